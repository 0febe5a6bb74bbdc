"""Routing-decision benchmark: the pure engine, in-process, on a realistic catalogue.

    python bench/routing.py --json [--decisions 200000] [--out bench/results/routing.json]

Builds a catalogue from phonenumbers' own carrier data: ~60 countries, their largest mobile
carriers as operators (≥ 200), most of each carrier's prefixes configured and the rest left to
the carrier-data fallback; ≥ 50 routes on 24 SMSCs in every region (direct, regional,
aggregator, country-wide, premium dedicated, economy bulk), ≥ 1,000 tenants across the tiers
(some with route allow-lists, 1% quarantined), and a health snapshot with degraded and down
routes. Traffic (generated, and checked with phonenumbers, before the clock starts): valid
mobile numbers of those operators, 0.5% invalid or non-mobile destinations, every tenant,
random message types and part counts. Each ``decide()`` is timed alone with
``time.perf_counter_ns`` after a warm-up, in several passes (the headline is the pass with the
median p99; every pass is in the output); throughput comes from an untimed pass. ``gc.freeze()``
after setup, as the worker should (docs/routing.md); ``--no-gc-freeze`` to compare. The
rejection path alone is measured separately; the load average before and after is recorded:
the machine is shared. Before the clock starts, every distinct destination of the mix is
resolved again by phonenumbers itself and must get exactly the same answer (rejection code
and text included), and the number of phonenumbers calls the mix makes is counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers.carrierdata import CARRIER_DATA
from pydantic import SecretStr

from smsflow.config.models import (
    BindClass,
    MessageType,
    Operator,
    PlatformConfig,
    Route,
    Smsc,
    Tenant,
    Tier,
)
from smsflow.domain.numbering import NumberRejection, build_numbering, resolve
from smsflow.domain.route_engine import (
    COUNTRY_REGION,
    REGION_COORDS,
    Decision,
    HealthReport,
    RouteRequest,
    build_catalogue,
    build_snapshot,
    decide,
)
from smsflow.domain.route_state import RouteState

COUNTRIES = (
    "GB DE FR IT ES NL BE PL SE NO DK FI PT IE AT CH CZ RO HU GR TR RU UA IN PK BD ID MY TH VN "
    "PH SG CN JP KR AU NZ ZA NG KE EG MA SA AE IL BR AR CL CO PE MX CA HK TW LK NP GH UG TZ"
).split()
NOW = 1_800_000_000.0
TARGET_P99_US = 20.0


def _slug(name: str) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    return "-".join(filter(None, slug.split("-")))[:40] or "op"


def _carriers(country: str) -> dict[str, list[str]]:
    """Carrier name → its E.164 prefixes, from phonenumbers' carrier data."""
    code = str(phonenumbers.country_code_for_region(country))
    names: dict[str, list[str]] = {}
    for prefix, by_language in CARRIER_DATA.items():
        if prefix.startswith(code):
            name = by_language.get("en") or next(iter(by_language.values()))
            names.setdefault(name, []).append("+" + prefix)
    return names


def build_config(rng: random.Random, tenants: int) -> tuple[PlatformConfig, dict[str, list[str]]]:
    """The platform config, and per operator the prefixes traffic is drawn from."""
    operators: list[Operator] = []
    traffic_prefixes: dict[str, list[str]] = {}
    seen_prefixes: set[str] = set()
    for country in COUNTRIES:
        carriers = sorted(_carriers(country).items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]
        for index, (name, prefixes) in enumerate(carriers):
            prefixes = sorted(set(prefixes) - seen_prefixes)
            if not prefixes:
                continue
            rng.shuffle(prefixes)
            configured = sorted(prefixes[: max(1, len(prefixes) * 3 // 4)])  # rest: carrier data
            seen_prefixes.update(prefixes)
            operator_id = f"{country.lower()}-{_slug(name)}"[:60]
            if any(o.id == operator_id for o in operators):
                continue
            operators.append(
                Operator(
                    id=operator_id, name=name, country=country,
                    mcc_mnc=f"{100 + len(operators):03d}{index:02d}", prefixes=tuple(configured),
                )
            )
            traffic_prefixes[operator_id] = prefixes
    regions = sorted(REGION_COORDS)
    smscs = [
        Smsc(id=f"smsc-{region}", host="127.0.0.1", port=2775 + i, system_id=f"sys{i}",
             password=SecretStr("env:SMSC_PASSWORD"), region=region)
        for i, region in enumerate(regions)
    ]
    by_region: dict[str, list[Operator]] = {}
    for operator in operators:
        by_region.setdefault(COUNTRY_REGION.get(operator.country, "eu-west"), []).append(operator)
    routes: list[Route] = []

    def add(route_id: str, smsc: Smsc, ops: Sequence[Operator], **fields: Any) -> None:
        if ops:
            routes.append(Route(
                id=route_id, smsc=smsc.id, operators=tuple(sorted({o.id for o in ops})),
                tps=rng.choice((200, 500, 1000, 2000)),
                cost=round(rng.uniform(0.005, 0.08), 4),
                baseline_score=round(rng.uniform(0.8, 0.99), 3),
                baseline_latency_ms=rng.choice((150, 300, 600, 1200, 2500)),
                **fields,
            ))

    for smsc in smscs:
        local = by_region.get(smsc.region, [])
        add(f"{smsc.region}-direct", smsc, local)
        add(f"{smsc.region}-premium", smsc, local, bind_class=BindClass.DEDICATED,
            tiers=(Tier.PREMIUM,), message_types=(MessageType.OTP, MessageType.TRANSACTIONAL))
        add(f"{smsc.region}-bulk", smsc, local, bind_class=BindClass.BULK, tiers=(Tier.ECONOMY,),
            message_types=(MessageType.MARKETING, MessageType.TRANSACTIONAL))
    for n in range(8):  # aggregators: a random third of the world each
        smsc = smscs[n * 3 % len(smscs)]
        add(f"aggregator-{n}", smsc, rng.sample(operators, len(operators) // 3),
            cost_overrides={"GB": 0.02, "DE": 0.025})
    for n, country in enumerate(COUNTRIES[:10]):  # country-wide (any operator, even unknown)
        ops = [o for o in operators if o.country == country][:1]
        add(f"countrywide-{country.lower()}", smscs[n % len(smscs)], ops, countries=(country,))
    tenant_list = []
    for n in range(tenants):
        tier = rng.choices(list(Tier), weights=(2, 5, 3))[0]
        allow = tuple(sorted(rng.sample([r.id for r in routes], 20))) if n % 20 == 0 else ()
        tenant_list.append(Tenant(
            id=f"tenant-{n:05d}", name=f"Tenant {n}", tier=tier, rate_limit_pps=100,
            quarantined=(n % 100 == 99), routes=allow,
        ))
    config = PlatformConfig(
        tenants=tuple(tenant_list), operators=tuple(operators), smscs=tuple(smscs),
        routes=tuple(routes),
    )
    return config, traffic_prefixes


def health_for(config: PlatformConfig, rng: random.Random) -> dict[str, HealthReport]:
    reports = {}
    for route in config.routes:
        roll = rng.random()
        if roll < 0.3:
            continue  # no report yet: baseline
        state = (
            RouteState.DOWN if roll > 0.97 else
            RouteState.DEGRADED if roll > 0.88 else RouteState.HEALTHY
        )
        reports[route.id] = HealthReport(
            state=state, score=round(rng.uniform(0.6, 0.99), 3),
            latency_ms=rng.choice((120.0, 250.0, 500.0, 900.0, 2000.0)), updated_at=NOW - 30,
        )
    return reports


def _valid_number(prefix: str, rng: random.Random) -> str | None:
    for _ in range(30):
        number = prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 9)))
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in (1, 2):
            return number
    return None


INVALID_SHARE = 0.005  # of requests: numbers that are not valid mobiles (typos, landlines)
FIXED_BAD = ("+4474012345", "+442071234567", "+448001234567", "+49301234567", "+3361234")


def make_traffic(
    config: PlatformConfig,
    prefixes: dict[str, list[str]],
    count: int,
    rng: random.Random,
    *,
    skewed: bool = False,
    invalid_share: float = INVALID_SHARE,
) -> list[RouteRequest]:
    """The headline mix. Uniform: every operator and tenant equally likely (cache-hostile worst
    case). Skewed: Zipf(1.1) over operators and tenants, as real traffic concentrates on a few.
    Every tenant can send, quarantined ones (1%) too; ``invalid_share`` of the destinations are
    not valid mobile numbers (a valid one with two digits dropped, landlines, toll free), which
    the engine rejects with libphonenumber's own verdict; the rest are valid mobiles of the
    configured operators; message types, part counts and tiers vary, over the health snapshot's
    healthy, degraded and down routes."""
    operator_ids = sorted(prefixes)
    tenants = list(config.tenants)
    operator_weights = _zipf(len(operator_ids), rng) if skewed else None
    tenant_weights = _zipf(len(tenants), rng) if skewed else None
    pool: list[str] = []
    while len(pool) < 20_000:
        operator_id = rng.choices(operator_ids, operator_weights)[0]
        number = _valid_number(rng.choice(prefixes[operator_id]), rng)
        if number is not None:
            pool.append(number)
    bad = [*FIXED_BAD, *(number[:-2] for number in rng.sample(pool, 500))]
    kinds = list(MessageType)
    chosen_tenants = rng.choices(tenants, tenant_weights, k=count)
    return [
        RouteRequest(
            tenant_id=tenant.id,
            destination=rng.choice(bad) if rng.random() < invalid_share else rng.choice(pool),
            message_type=rng.choice(kinds), parts=rng.choice((1, 1, 1, 2, 3)),
        )
        for tenant in chosen_tenants
    ]


def _zipf(n: int, rng: random.Random, s: float = 1.1) -> list[float]:
    weights = [1 / (rank + 1) ** s for rank in range(n)]
    rng.shuffle(weights)
    return weights


def _verify(catalogue: Any, requests: Sequence[RouteRequest]) -> dict[str, int]:
    """Every distinct destination resolved by the engine's tables and by phonenumbers alone
    (a plan without compiled metadata): they must agree exactly. Also counts the phonenumbers
    parses the engine makes for the mix (the fast paths should leave none)."""
    slow = build_numbering([])
    destinations = sorted({r.destination for r in requests})
    parses = 0
    real_parse = phonenumbers.parse

    def counting_parse(*args: Any, **kwargs: Any) -> Any:
        nonlocal parses
        parses += 1
        return real_parse(*args, **kwargs)

    phonenumbers.parse = counting_parse
    try:
        fast = [resolve(catalogue.numbering, d) for d in destinations]
    finally:
        phonenumbers.parse = real_parse
    mismatches = []
    for destination, got in zip(destinations, fast, strict=True):
        want = resolve(slow, destination)  # no operators configured: compare the number part
        rejected = isinstance(got, NumberRejection) or isinstance(want, NumberRejection)
        if (got != want) if rejected else (got[:3] != want[:3]):
            mismatches.append((destination, got, want))
    if mismatches:
        raise SystemExit(f"engine and phonenumbers disagree: {mismatches[:5]}")
    return {"distinct_destinations": len(destinations), "phonenumbers_parses": parses}


def _percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1000.0


def _timed(
    snapshot: Any, requests: Sequence[RouteRequest], clock: Any = time.perf_counter_ns
) -> list[int]:
    samples = [0] * len(requests)
    for i, request in enumerate(requests):
        start = clock()
        decide(snapshot, request, NOW)
        samples[i] = clock() - start
    return samples


def _summary(samples: list[int]) -> dict[str, float]:
    return {
        "p50_us": round(_percentile(samples, 0.50), 2),
        "p90_us": round(_percentile(samples, 0.90), 2),
        "p99_us": round(_percentile(samples, 0.99), 2),
        "p999_us": round(_percentile(samples, 0.999), 2),
        "max_us": round(samples[-1] / 1000, 2),
    }


def run(
    decisions: int, tenants: int, seed: int, *, runs: int = 3, freeze: bool = True
) -> dict[str, Any]:
    load_before = os.getloadavg()
    rng = random.Random(seed)
    config, prefixes = build_config(rng, tenants)
    start = time.perf_counter()
    catalogue = build_catalogue(config)
    catalogue_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    catalogue = build_catalogue(config)  # metadata regexes now compiled (process-wide cache)
    catalogue_warm_ms = (time.perf_counter() - start) * 1000
    health = health_for(config, rng)
    start = time.perf_counter()
    snapshot = build_snapshot(catalogue, health, NOW)
    snapshot_ms = (time.perf_counter() - start) * 1000
    requests = make_traffic(config, prefixes, decisions, rng)
    skewed_requests = make_traffic(config, prefixes, decisions, rng, skewed=True)
    bad = [
        RouteRequest(requests[i].tenant_id, number, MessageType.OTP)
        for i, number in enumerate(FIXED_BAD * 400)
    ]
    verified = _verify(catalogue, [*requests, *skewed_requests, *bad])
    # What a worker does after building its configuration (see docs/routing.md): collect, then
    # move every long-lived object out of the collector's reach, so a gen-2 collection during
    # the timed loop does not walk the catalogue's ~10^6 objects. The per-decision garbage is
    # still collected as usual (gc stays enabled).
    gc.collect()
    if freeze:
        gc.freeze()

    outcomes: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    number_ok = []  # False: the destination itself was refused (invalid, not SMS-capable)
    for request in requests:
        outcome = decide(snapshot, request, NOW)
        if isinstance(outcome, Decision):
            outcomes["ROUTED"] += 1
            sources[outcome.destination.operator_source.value] += 1
        else:
            outcomes[outcome.reason_code] += 1
        number_ok.append(
            getattr(outcome, "reason_code", "") not in ("INVALID_NUMBER", "UNSUPPORTED_DESTINATION")
        )

    _timed(snapshot, requests[:20_000])  # warm-up, not counted
    passes = [sorted(_timed(snapshot, requests)) for _ in range(runs)]
    by_p99 = sorted(passes, key=lambda s: _percentile(s, 0.99))
    samples = by_p99[len(by_p99) // 2]  # the headline: the pass with the median p99
    start = time.perf_counter()
    for request in requests:
        decide(snapshot, request, NOW)
    throughput = len(requests) / (time.perf_counter() - start)
    clock = time.perf_counter_ns
    overhead = sorted(-clock() + clock() for _ in range(10_000))
    cpu = sorted(_timed(snapshot, requests, time.thread_time_ns))
    cpu_clock = time.thread_time_ns
    cpu_overhead = sorted(-cpu_clock() + cpu_clock() for _ in range(10_000))
    _timed(snapshot, skewed_requests[:20_000])
    skewed = sorted(_timed(snapshot, skewed_requests))
    valid_only = sorted(
        t for t, ok in zip(_timed(snapshot, requests), number_ok, strict=True) if ok
    )
    rejected = sorted(_timed(snapshot, bad))
    load_after = os.getloadavg()
    return {
        "decisions": len(samples),
        "decisions_per_s": round(throughput),
        **_summary(samples),
        "mean_us": round(sum(samples) / len(samples) / 1000, 2),
        "target_p99_us": TARGET_P99_US,
        "target_met": _percentile(samples, 0.99) <= TARGET_P99_US,
        "passes": [_summary(s) for s in passes],
        "timer_overhead_ns_p50": overhead[len(overhead) // 2],
        "thread_cpu_time": {
            "note": "same mix timed with time.thread_time_ns: excludes time the thread "
                    "was preempted by other processes; includes that clock's own overhead",
            **_summary(cpu),
            "timer_overhead_ns_p50": cpu_overhead[len(cpu_overhead) // 2],
        },
        "skewed_mix": {
            "note": "Zipf(1.1) over operators and tenants instead of uniform; wall clock",
            "decisions": len(skewed),
            **_summary(skewed),
        },
        "valid_numbers_only": {
            "note": "the headline mix without the invalid destinations (one more pass)",
            "decisions": len(valid_only),
            **_summary(valid_only),
        },
        "numbers_verified": {
            "note": "every distinct destination of the mixes resolved again by phonenumbers "
                    "alone: same verdict (rejection code and text included) for all; "
                    "phonenumbers_parses: parses the engine itself made for them",
            **verified,
        },
        "rejection_path_p50_us": round(_percentile(rejected, 0.5), 2),
        "rejection_path_p99_us": round(_percentile(rejected, 0.99), 2),
        "outcomes": dict(sorted(outcomes.items())),
        "operator_resolution": dict(sorted(sources.items())),
        "catalogue": {
            "operators": len(config.operators),
            "countries": len({o.country for o in config.operators}),
            "configured_prefixes": sum(len(o.prefixes) for o in config.operators),
            "smscs": len(config.smscs),
            "routes": len(config.routes),
            "tenants": len(config.tenants),
            "health_reports": len(health),
            "health_states": dict(sorted(Counter(r.state.value for r in health.values()).items())),
            "destination_keys": len(snapshot.rankings),
            "build_catalogue_ms_cold": round(catalogue_ms, 1),
            "build_catalogue_ms_warm": round(catalogue_warm_ms, 1),
            "build_snapshot_ms": round(snapshot_ms, 1),
        },
        "method": f"headline: uniform mix ({INVALID_SHARE:.1%} invalid destinations, all "
                  "tenants incl. quarantined), each decide() timed alone with perf_counter_ns "
                  "(includes timer overhead), wall clock, after a 20,000-decision warm-up; "
                  f"{runs} timed passes over the same requests, the headline is the pass with "
                  "the median p99 (all in 'passes'); decisions_per_s from an untimed pass; gc "
                  f"enabled{', gc.freeze() after setup' if freeze else ', no gc.freeze()'}; "
                  "one process, one thread",
        "gc_freeze": freeze,
        "engine_build": "mypyc" if _compiled() else "interpreted (CPython)",
        "machine": {
            "cores": os.cpu_count(),
            "load_avg_1m_before": round(load_before[0], 2),
            "load_avg_1m_after": round(load_after[0], 2),
            "load_avg_5m_after": round(load_after[1], 2),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "phonenumbers": phonenumbers.__version__,
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _compiled() -> bool:
    """Whether the engine modules are mypyc-compiled extension modules."""
    from smsflow.domain import numbering, route_engine

    return all(str(m.__file__).endswith(".so") for m in (numbering, route_engine))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=1_200)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="timed passes (headline: median p99)")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the catalogue to the garbage collector (no gc.freeze())")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    result = run(
        args.decisions, args.tenants, args.seed, runs=args.runs, freeze=not args.no_gc_freeze
    )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        print(
            f"{result['decisions']} decisions: {result['decisions_per_s']}/s, "
            f"p50 {result['p50_us']} µs, p99 {result['p99_us']} µs "
            f"(target {TARGET_P99_US} µs: {'met' if result['target_met'] else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
