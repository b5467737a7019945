"""A reload (SIGHUP) reaches the web remote: the page is made from the new config's names."""

from __future__ import annotations

import asyncio

import aiohttp
from daemonkit import CONFIG_TOML, until
from osckit import run

from controlroom.daemon.config import load_config
from controlroom.daemon.service import Daemon

CONFIG = CONFIG_TOML.format(ab_extra="") + '\n[web]\nlisten = "127.0.0.1:0"\n'


def test_a_reload_that_renames_a_speaker_set_renames_its_button(tmp_path):
    path = tmp_path / "controlroom.toml"
    path.write_text(CONFIG)

    async def page(daemon: Daemon) -> str:
        async with aiohttp.ClientSession() as session, session.get(daemon.web.url) as response:
            return await response.text()

    async def scenario():
        daemon = Daemon(load_config(path), path, state_path=None)
        serving = asyncio.create_task(daemon.run())
        try:
            await until(lambda: daemon.web is not None and daemon.web.port and daemon.runner.running, "the remote")
            assert 'data-target="speakers" data-value="studio"' in await page(daemon)
            path.write_text(CONFIG.replace("[speakers.studio]", "[speakers.mains]"))
            daemon.reload()
            await until(lambda: "mains" in daemon.config.speakers, "the reload")
            text = await page(daemon)
            assert 'data-target="speakers" data-value="mains"' in text
            assert 'data-value="studio"' not in text
        finally:
            daemon.stop()
            assert await serving == 0

    run(scenario)
