"""Dashboard fixtures: a warehouse and store made by the real pipeline on small generated data
(two runs, so migration and changes exist), users of every role, and the app served by uvicorn
on a free loopback port for the browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import uvicorn

from tierwise.api.app import create_app
from tierwise.core.settings import Settings
from tierwise.services.generate import generate
from tierwise.services.ingest import ingest
from tierwise.services.run import run
from tierwise.services.serving import add_user, opened_store

CUSTOMERS = 1500
FIRST_AS_OF = date(2026, 3, 31)
"""The first run looks three months back, the second at the end of the data: customers move."""
AGENT = "am001"
"""An account manager of the generated data, signed up as an agent."""
OTHER_AGENT = "am002"
REJECTED_LINE = "0000017,not-a-date,service,4,9,请打 13812345678 联系我\n"
"""A feedback line ingest must reject (bad date), with a phone number in its raw text."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@dataclass
class Demo:
    settings: Settings
    passwords: dict[str, str] = field(default_factory=dict)


def build_demo(directory: Path, customers: int = CUSTOMERS) -> Demo:
    """Generate, ingest (with one bad line) and run twice; users of every role."""
    result = generate(customers, directory, seed=7)
    with (directory / "feedback.csv").open("a", encoding="utf-8") as f:
        f.write(REJECTED_LINE)
    settings = Settings.load(result.config)
    report = ingest(settings)
    assert not report.failed
    run(settings, as_of=FIRST_AS_OF)
    run(settings)
    demo = Demo(settings)
    with opened_store(settings) as store:
        for username, role, team in (
            ("admin", "admin", None),
            ("analyst", "analyst", None),
            ("boss", "manager", "east"),
            (AGENT, "agent", "east"),
            (OTHER_AGENT, "agent", "west"),
        ):
            _, demo.passwords[username] = add_user(store, username, role, team=team)
    return demo


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return build_demo(tmp_path_factory.mktemp("dashboard"))


class LiveServer:
    """The app on uvicorn in a thread of this process, on a socket bound before it starts."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.socket.close()


@pytest.fixture(scope="session")
def live(demo: Demo) -> Iterator[LiveServer]:
    with LiveServer(demo.settings) as server:
        yield server
