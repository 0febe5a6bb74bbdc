"""Worker-wide state shared by the agents: the configuration watcher."""

from __future__ import annotations

from pipeline.app import app, config_topic_name, settings
from pipeline.config_watch import ConfigWatcher

config_watcher = ConfigWatcher(settings.kafka_bootstrap, config_topic_name)


@app.task
async def watch_config() -> None:
    await config_watcher.run()
