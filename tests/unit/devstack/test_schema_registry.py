"""smsflow.devstack.schema_registry without a registry: the pom, the Quarkus properties, the
command line, the safe unpacking and the CLI wiring. The registry itself runs in
tests/integration/test_schema_registry.py; the life cycle it shares with the broker in
test_java_service.py."""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import pytest

from smsflow.devstack import schema_registry as server


def test_registry_pom_names_the_runnable_distribution() -> None:
    pom = server.render_pom()
    assert "<artifactId>apicurio-registry-app</artifactId>" in pom
    assert f"<version>{server.REGISTRY_VERSION}</version>" in pom
    assert "<classifier>all</classifier>" in pom and "<type>tar.gz</type>" in pom
    assert f"<destFileName>{server.DIST_FILE}</destFileName>" in pom
    assert "$" not in pom.split("-->", 1)[1]  # every placeholder substituted


def test_registry_properties_bind_loopback_and_file_storage(tmp_path: Path) -> None:
    props = server.registry_properties(tmp_path / "registry", 18081)
    assert props["quarkus.http.host"] == "127.0.0.1"
    assert props["quarkus.http.port"] == "18081"
    assert props["REGISTRY_DATASOURCE_URL"] == f"jdbc:h2:file:{tmp_path}/registry/data/registry"
    assert props[server.HOME_PROPERTY] == str(tmp_path / "registry")


def test_registry_command_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(server.ENV_PORT, "18099")
    registry = server.LocalSchemaRegistry.from_env(tmp_path)
    assert registry.port == 18099
    assert registry.url == "http://127.0.0.1:18099/apis/ccompat/v7"
    assert registry.is_this("http://localhost:18099/apis/ccompat/v7")
    assert not registry.is_this("http://127.0.0.1:8081/apis/ccompat/v7")
    assert not registry.is_this("http://10.1.1.1:18099/apis/ccompat/v7")
    command = registry.command()
    assert command[-2:] == ["-jar", str(registry.runner_jar)]
    assert f"-D{server.HOME_PROPERTY}={registry.registry_dir}" in command
    assert registry.pid() is None and not registry.is_running()
    assert registry.stop() is False  # never started here: nothing to stop, nothing created
    assert not registry.registry_dir.exists()
    monkeypatch.setenv(server.ENV_PORT, "eighty")
    with pytest.raises(server.RegistryServerError):
        server.LocalSchemaRegistry.from_env(tmp_path)


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_unpack_extracts_and_refuses_escapes(tmp_path: Path) -> None:
    good = _tar(tmp_path / "good.tar.gz", {"app.jar": b"x", "lib/a.jar": b"y"})
    server.unpack(good, tmp_path / "out")
    assert (tmp_path / "out" / "lib" / "a.jar").read_bytes() == b"y"
    for bad_name in ("../evil.jar", "/abs.jar"):
        bad = _tar(tmp_path / "bad.tar.gz", {bad_name: b"z"})
        with pytest.raises(server.RegistryServerError, match="refusing"):
            server.unpack(bad, tmp_path / "out2")
    assert not (tmp_path / "evil.jar").exists()


def test_cli_parser_has_start_stop_status() -> None:
    parser = argparse.ArgumentParser()
    server.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["registry", "start", "--port", "18081", "--timeout", "5"])
    assert (args.port, args.timeout, args.func) == (18081, 5.0, server._cmd_start)
    assert parser.parse_args(["registry", "stop"]).func is server._cmd_stop
    assert parser.parse_args(["registry", "status"]).func is server._cmd_status
