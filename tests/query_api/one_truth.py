"""One archive with every view on it (transcript and presence views, search index, the app),
and readers that bring what each view says about a room's messages to one shape:
``{line id: (text shown, edited, removed)}`` per role, for the differential tests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from archive import events as ev
from archive.application import open_event_store
from projections.follower import LogFollower
from projections.search import IndexLocation, SearchIndex, SearchIndexer, SearchIndexProjection
from projections.views import Views
from query_api import create_app
from query_api.context import EXTENSION
from query_api.roles import Role
from query_api.tokens import open_token_store
from query_api.web.widget import TICKET_HEADER
from tests.query_api.conftest import auth, make_config

LATER = "2100-01-01T00:00:00Z"


class World:
    def __init__(self, store_url: str, base: Path):
        self.store = open_event_store(store_url)
        views_url = store_url if store_url.startswith("postgresql") else f"sqlite:///{base}/views.sqlite"
        self.views = Views(views_url, self.store)
        location = IndexLocation(base / "index")
        SearchIndexProjection(location).close()
        self.search_index = SearchIndex(location, reload_interval=0)
        self.tokens = open_token_store(store_url, cache_seconds=0)
        config = make_config(store_url)
        self.app = create_app(config, store=self.store, views=self.views, search=self.search_index, tokens=self.tokens)
        self.client = self.app.test_client()
        self.compliance = self.tokens.create(Role.COMPLIANCE)[0]
        self._widgets: dict[str, tuple] = {}  # room -> (ticket, cursor, lines shown by id)

    def close(self) -> None:
        self.tokens.close()
        self.views.close()
        self.store.close()

    def new_room(self) -> str:
        return f"r{uuid.uuid4().hex[:10]}@conference.localhost"

    def feed(self, events: list[ev.Event]) -> list[ev.Recorded]:
        recorded = self.store.append(events)
        for projection in self.views.projections():
            LogFollower(self.store, projection, commit_interval=60).catch_up()
        projection = SearchIndexProjection(self.search_index.location)
        SearchIndexer(self.store, projection, commit_interval=0.05).catch_up()
        projection.close()
        self.app.extensions[EXTENSION]._rooms.clear()  # a new room is known at once, not within a second
        return recorded

    def token(self, room: str, compliance: bool, role: Role = Role.SITE) -> str:
        """Compliance, or an ordinary reader of the room: the site (transcripts, search, the
        widget) or an analyst (state)."""
        return self.compliance if compliance else self.tokens.create(role, (room,))[0]

    def _get(self, url: str, token: str):
        response = self.client.get(url, headers=auth(token, "carol"))
        response.get_data()
        response.close()  # a stream's slot is given back on close
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
        return response

    # -- the views, each in the one shape ---------------------------------------

    def transcript(self, room: str, compliance: bool) -> dict:
        token = self.token(room, compliance)
        page = self._get(f"/api/v1/rooms/{room}/transcript?limit=1000", token).get_json()
        return {line["id"]: _shape(line) for line in page["lines"] if line["kind"] in ("message", "retraction")}

    def state(self, room: str, compliance: bool) -> dict:
        token = self.token(room, compliance, Role.ANALYST)
        state = self._get(f"/api/v1/rooms/{room}/state?at={LATER}&limit=5000", token).get_json()
        return {line["id"]: _shape(line) for line in state["lines"] if line["kind"] in ("message", "retraction")}

    def search(self, room: str, compliance: bool) -> dict:
        """Search shows messages (``is:retracted`` ones to compliance only), never retraction lines."""
        token = self.token(room, compliance)
        hits = self._get(f"/api/v1/search?q=room:{room}&sort=oldest&limit=500", token).get_json()["hits"]
        return {hit["position"]: (hit["body"], hit["edited"], hit.get("retracted", False)) for hit in hits}

    def widget(self, room: str) -> dict:
        """What a widget opened on the room shows now, having polled after every ``feed``
        since it was opened (as its script does: an item replaces the line with its id)."""
        self.poll_widget(room)
        return {i: (v["body"], v["edited"], v["removed"]) for i, v in self._widgets[room][2].items()
                if v["kind"] == "message"}

    def poll_widget(self, room: str) -> None:
        if room not in self._widgets:
            token = self.token(room, False)
            ticket = self.client.post("/widget/tickets", json={"room": room}, headers=auth(token, "carol"))
            self._widgets[room] = (ticket.get_json()["ticket"], None, {})
        ticket, cursor, shown = self._widgets[room]
        url = f"/widget/{room}/activity" + (f"?cursor={cursor}" if cursor else "")
        response = self.client.get(url, headers={TICKET_HEADER: ticket})
        assert response.status_code == 200, response.get_data(as_text=True)
        data = response.get_json()
        for item in data["items"]:
            if item["kind"] == "gone":
                shown.pop(item["id"], None)
            else:
                shown[item["id"]] = item
        self._widgets[room] = (ticket, data["cursor"], shown)

    def exported(self, room: str) -> set[int]:
        """Positions of the events a compliance search export of the room carries."""
        body = self._get(f"/api/v1/export?q=room:{room}&format=jsonl", self.compliance).get_data(as_text=True)
        return {json.loads(line)["position"] for line in body.splitlines()[:-1]}


def _shape(line: dict) -> tuple:
    return (line.get("body"), line.get("edited", False), line.get("removed") is not None)
