"""Locust users for bench/load.py: dashboard-like reads of the API with a bearer token.

Each user, without think time, alternates customer 360 reads (70 %) with list pages (30 %) —
filtered, sorted and paged the way the customers page asks for them.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, constant, task

IDS = os.environ["TIERWISE_LOAD_IDS"].split(",")
TOKEN = os.environ["TIERWISE_LOAD_TOKEN"]
SEGMENTS = ["champions", "loyal", "at_risk", "hibernating", "new", "potential_loyalist"]
STAGES = ["active", "loyal", "dormant", "churned", "new"]
SORTS = [("clv", "desc"), ("revenue", "desc"), ("recency_days", "asc"), ("customer_id", "asc")]


class DashboardReader(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {TOKEN}"

    @task(7)
    def profile(self) -> None:
        self.client.get(f"/api/v1/customers/{random.choice(IDS)}", name="/customers/{id}")

    @task(3)
    def page(self) -> None:
        sort, order = random.choice(SORTS)
        params: dict[str, str | int] = {
            "page": random.randint(1, 50),
            "page_size": 50,
            "sort": sort,
            "order": order,
        }
        if random.random() < 0.5:
            params["segment"] = random.choice(SEGMENTS)
        else:
            params["stage"] = random.choice(STAGES)
        self.client.get("/api/v1/customers", params=params, name="/customers?…")
