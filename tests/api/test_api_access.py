"""The scope builder and the masks on their own, on the seeded stores."""

from __future__ import annotations

from sqlalchemy import func, select
from tests.api.world import N_CUSTOMERS, World, visible_to

from tierwise.services.access import Principal, for_viewer, mask_email, mask_phone, scope
from tierwise.store.users import get_user


def count(world: World, query) -> int:
    with world.store.read() as session:
        return session.scalar(select(func.count()).select_from(query.subquery()))


def test_scope_pins_a_published_run_and_defaults_to_the_current(world: World):
    admin = Principal(0, "root", "root", "admin", None)
    assert count(world, scope(admin)) == N_CUSTOMERS
    assert count(world, scope(admin, run_id="run-1")) == 200
    assert count(world, scope(admin, run_id="no-such-run")) == 0


def test_scope_takes_store_users_and_refuses_unknown_roles(world: World):
    with world.store.read() as session:
        user = get_user(session, "ag2")
        assert count(world, scope(user)) == len(visible_to("ag2")) > 0
    assert count(world, scope(Principal(0, "ag2", "ag2", "auditor", None))) == 0


def test_masks_hide_all_but_a_hint():
    assert mask_phone("+86 138 0013 8000") == "+86****8000"
    assert mask_phone("5550123") == "****23"
    assert mask_phone("123") == "****"
    assert mask_email("not-an-email") == "n***"


def test_for_viewer_masks_nested_personal_fields_and_keeps_the_rest():
    record = {
        "customer_id": "C1",
        "contact": {"address": {"street": "西湖路 1 号", "city": "杭州"}},
        "home_address": ["西湖路 1 号", "北京路 2 号"],
        "email_verified": True,
        "revenue": 12.5,
        "id_card": 330102199001011234,
    }
    agent = Principal(0, "ag1", "ag1", "agent", None)
    assert for_viewer(agent, record) == {
        "customer_id": "C1",
        "contact": {"address": {"street": "西***", "city": "杭***"}},
        "home_address": ["西***", "北***"],
        "email_verified": True,
        "revenue": 12.5,
        "id_card": "3***",
    }
    assert for_viewer(Principal(0, "root", "root", "admin", None), record) == record
