"""The web view's pages, security checks and live stream, through Starlette's test client."""

import asyncio
import json
import re

import pytest

from coditect.domain.events import AgentAct, MissionState
from coditect.domain.tasks import GoalState
from coditect.errors import ConfigError


def rows(html):
    return re.findall(r'<a href="/missions/(m-[^"]+)">', html)


def csrf(client):
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


def test_missions_list_pages_and_filters(make_client, seed):
    seed(120)
    client = make_client()
    first = client.get("/")
    assert first.status_code == 200
    assert rows(first.text)[:2] == ["m-00119", "m-00118"] and len(rows(first.text)) == 50
    assert "120 missions" in first.text and "page 1 of 3" in first.text
    last = client.get("/?page=3")
    assert len(rows(last.text)) == 20 and rows(last.text)[-1] == "m-00000"
    failed = client.get("/?status=FAILED&per_page=100")
    assert (
        len(rows(failed.text)) == 40
        and "s-FAILED" in failed.text
        and "s-SUCCESS" not in failed.text
    )
    words = client.get("/?q=number 7")
    assert set(rows(words.text)) == {
        "m-00007",
        "m-00070",
        "m-00071",
        "m-00072",
        "m-00073",
        "m-00074",
        "m-00075",
        "m-00076",
        "m-00077",
        "m-00078",
        "m-00079",
    }
    assert "no missions match" in client.get("/?q=nothing-like-this").text
    running = client.get("/?status=RUNNING&per_page=1").text
    assert re.search(r"<td>\d{4,}\.\ds</td>", running)  # running since 2026-01-01: a long time
    # nonsense parameters fall back to defaults instead of failing
    assert client.get("/?page=x&per_page=-4&status=BOGUS").status_code == 200


def test_mission_page_shows_graph_tasks_tests_diff_costs_timeline(make_client, sample):
    page = make_client().get(f"/missions/{sample.mission_id}")
    assert page.status_code == 200
    html = page.text
    assert "&lt;script&gt;alert(1)" in html and "<script>alert(1)" not in html  # escaped
    assert re.search(r'class="node st-complete" data-task="t1"', html)
    assert 'class="node st-failed superseded" data-task="t3"' in html
    assert 'class="edge repair"' in html  # the repair round is drawn
    assert "5 != 8" in html  # failure details of the test run
    assert 'class="hl"' in html and "fib" in html  # highlighted diff
    assert 'id="cost-agents"' in html and "$0.0012" in html
    assert "asking for code" in html and "mission complete" in html
    assert 'data-live="0"' in html and 'id="apply"' in html


def test_unknown_mission_and_static_files(make_client):
    client = make_client()
    assert client.get("/missions/m-nope").status_code == 404
    assert client.get("/missions/m-nope/graph").status_code == 404
    assert "EventSource" in client.get("/static/app.js").text
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    for name in ("../app.py", "..%2F..%2Fsecurity.py", "missing.js"):
        assert client.get(f"/static/{name}").status_code == 404
    assert client.get("/healthz").text == "ok"


def test_graph_fragment(make_client, sample):
    svg = make_client().get(f"/missions/{sample.mission_id}/graph").text
    assert svg.startswith("<svg") and svg.count('class="node') == 5


def test_state_changes_need_the_csrf_token_and_our_origin(make_client, sample, tmp_path):
    client = make_client()
    token = csrf(client)
    form = {"request": "x", "repo": str(tmp_path)}
    assert client.post("/missions", data=form).status_code == 403
    assert client.post("/missions", data={**form, "csrf": "wrong"}).status_code == 403
    evil = {"origin": "http://evil.example"}
    assert client.post("/missions", data={**form, "csrf": token}, headers=evil).status_code == 403
    for path in ("review", "apply"):
        assert client.post(f"/missions/{sample.mission_id}/{path}").status_code == 403


def test_foreign_host_names_are_refused(make_client):
    client = make_client()
    assert client.get("/", headers={"host": "evil.example:8420"}).status_code == 421
    assert client.get("/", headers={"host": "localhost:8420"}).status_code == 200


def test_token_as_bearer_header_or_cookie(make_client):
    client = make_client(token="s3cret", host="0.0.0.0", follow_redirects=False)
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.get("/", headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/?token=nope").status_code == 401
    login = client.get("/missions/m-x?token=s3cret&a=1")
    assert login.status_code == 303 and login.headers["location"] == "/missions/m-x?a=1"
    assert "httponly" in login.headers["set-cookie"].lower()
    assert client.get("/").status_code == 200  # the cookie now carries the token


def test_non_loopback_listen_needs_a_token():
    from coditect.ui.security import Guard, is_loopback, split_listen

    with pytest.raises(ConfigError):
        Guard("0.0.0.0")
    assert Guard("127.0.0.1").csrf != Guard("127.0.0.1").csrf
    assert split_listen("[::1]:80") == ("::1", 80) and split_listen(":9") == ("127.0.0.1", 9)
    for bad in ("nohost", "h:99999", "h:x"):
        with pytest.raises(ConfigError):
            split_listen(bad)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.com")


def test_start_form_validates(make_client, tmp_path):
    client = make_client()
    assert 'id="start-form"' in client.get("/new").text
    token = csrf(client)
    missing = client.post(
        "/missions", data={"csrf": token, "request": "x", "repo": str(tmp_path / "no")}
    )
    assert missing.status_code == 400 and "is not a directory" in missing.text
    bad = client.post(
        "/missions",
        data={"csrf": token, "request": "x", "repo": str(tmp_path), "max_repairs": "99"},
    )
    assert bad.status_code == 400 and "max_repairs" in bad.text
    assert 'value="99"' in bad.text  # the form keeps what was typed
    llm = client.post(
        "/missions",
        data={"csrf": token, "request": "x", "repo": str(tmp_path), "llm": "nosuch:model"},
    )
    assert llm.status_code == 400


def test_read_only_view_has_no_start_or_review(make_client, sample):
    client = make_client(read_only=True)
    assert client.get("/new").status_code == 404
    assert 'id="nav-new"' not in client.get("/").text
    token = csrf(client)
    assert (
        client.post("/missions", data={"csrf": token, "request": "x", "repo": "/"}).status_code
        == 403
    )
    reviewed = client.post(
        f"/missions/{sample.mission_id}/review", data={"csrf": token, "verdict": "accept"}
    )
    assert reviewed.status_code == 403
    page = client.get(f"/missions/{sample.mission_id}").text
    assert 'id="apply"' not in page
    assert (
        client.post(f"/missions/{sample.mission_id}/apply", data={"csrf": token}).status_code == 403
    )


def test_review_of_a_mission_not_waiting(make_client, sample):
    client = make_client()
    token = csrf(client)
    url = f"/missions/{sample.mission_id}/review"
    assert client.post(url, data={"csrf": token, "verdict": "maybe"}).status_code == 400
    assert client.post(url, data={"csrf": token, "verdict": "accept"}).status_code == 409


def test_apply_refusal_is_shown_on_the_page(make_client, sample):
    client = make_client(follow_redirects=False)
    token = csrf(client)
    answer = client.post(f"/missions/{sample.mission_id}/apply", data={"csrf": token})
    assert answer.status_code == 303 and "msg=" in answer.headers["location"]
    page = client.get(answer.headers["location"]).text
    assert 'id="message"' in page and "does not exist" in page
    assert client.post("/missions/m-nope/apply", data={"csrf": token}).status_code == 404


def sse_events(response):
    events, kind = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "coditect":
            events.append(json.loads(line[6:]))
        elif line.startswith("data: ") and kind == "end":
            break
    return events


def test_stream_of_500_events_drops_none(make_client, source, report_factory):
    report = report_factory("m-busy", status="RUNNING")
    events = [
        AgentAct(
            mission_id="m-busy", task_id=f"t{i % 7}", agent="coder", action="step", detail=str(i)
        )
        for i in range(500)
    ]

    async def store_half_then_rest():
        await source.store.save_report(report)
        await source.store.append_events(events[:250])

    asyncio.run(store_half_then_rest())
    client = make_client()

    import threading

    def write_rest():  # appended in small batches while the stream is being read
        async def go():
            for i in range(250, 500, 25):
                await source.store.append_events(events[i : i + 25])
                await asyncio.sleep(0.01)
            await source.store.append_events(
                [MissionState(mission_id="m-busy", state=GoalState.COMPLETE)]
            )

        asyncio.run(go())

    writer = threading.Thread(target=write_rest)
    with client.stream("GET", "/missions/m-busy/events?after=0") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        writer.start()
        got = sse_events(response)
    writer.join()
    details = [e["detail"] for e in got if e["type"] == "agent.act"]
    assert details == [str(i) for i in range(500)]
    assert got[-1]["type"] == "mission.state" and got[-1]["state"] == "complete"
    assert len({e["event_id"] for e in got}) == len(got) == 501


def test_a_mission_refused_at_start_ends_failed_on_its_page(make_client, tmp_path):
    import subprocess

    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=empty, check=True)
    client = make_client(follow_redirects=False)
    started = client.post(
        "/missions",
        data={
            "csrf": csrf(client),
            "request": "add x",
            "repo": str(empty),
            "llm": "scripted:fibonacci",
        },
    )
    assert started.status_code == 303
    url = started.headers["location"]
    assert client.get("/missions/m-nope/events").status_code == 404
    with client.stream("GET", url + "/events?after=0") as response:
        got = sse_events(response)
    assert got[-1]["type"] == "mission.state" and got[-1]["state"] == "failed"
    page = client.get(url).text
    assert "s-FAILED" in page and "without any commit" in page


def test_reject_from_the_page_lands_nothing(make_client, calculator_repo, git):
    import time

    client = make_client(follow_redirects=False)
    started = client.post(
        "/missions",
        data={
            "csrf": csrf(client),
            "request": "Add a function to calculate the nth Fibonacci number",
            "repo": str(calculator_repo),
            "llm": "scripted:fibonacci",
            "sandbox": "subprocess",
            "max_repairs": "1",
            "review": "on",
        },
    )
    mid = started.headers["location"].rsplit("/", 1)[1]
    reviews = client.ui_state.launcher.reviews
    deadline = time.monotonic() + 120
    while reviews.pending(mid) is None:  # the mission runs in the client's event loop thread
        assert time.monotonic() < deadline, "no review was asked for"
        time.sleep(0.05)
    page = client.get(f"/missions/{mid}").text
    assert 'id="review-reject"' in page and "waiting for review" in page and "s-RUNNING" in page
    assert 'id="diff"' in page and "fibonacci" in page  # the diff under review is shown
    answer = client.post(
        f"/missions/{mid}/review", data={"csrf": csrf(client), "verdict": "reject"}
    )
    assert answer.status_code == 303
    with client.stream("GET", f"/missions/{mid}/events?after=0") as response:
        got = sse_events(response)
    assert [e["action"] for e in got if e["type"] == "agent.act" and e["task_id"] == "review"] == [
        "review.requested",
        "review.reject",
    ]
    final = client.get(f"/missions/{mid}").text
    assert "s-REJECTED" in final and 'id="review-reject"' not in final
    assert "coditect/" not in git(calculator_repo, "branch", "--list")


SAVE_RUNNING = """
import asyncio, sys
from coditect.domain.mission import MissionReport
from coditect.state.sql import SqlStore

async def main():
    store = SqlStore(sys.argv[1])
    await store.save_report(MissionReport(mission_id="m-killed", request="r", repo="/r"))
    await store.close()

asyncio.run(main())
"""


def test_a_running_mission_whose_process_is_gone_shows_interrupted(make_client, source, settings):
    import subprocess
    import sys

    from coditect.domain.mission import MissionReport

    # Saved RUNNING by a process that has ended since (its owner), and by this live one.
    subprocess.run([sys.executable, "-c", SAVE_RUNNING, settings.database_url], check=True)
    live = MissionReport(mission_id="m-alive", request="r", repo="/r")
    asyncio.run(source.store.save_report(live))
    client = make_client(read_only=True)
    listed = client.get("/").text
    killed_row = listed[listed.index("/missions/m-killed") :].split("</tr>")[0]
    alive_row = listed[listed.index("/missions/m-alive") :].split("</tr>")[0]
    assert ">INTERRUPTED<" in killed_row and "`coditect resume m-killed` continues it" in killed_row
    assert ">RUNNING<" in alive_row
    page = client.get("/missions/m-killed").text
    assert 'id="status">INTERRUPTED<' in page
    # The status filter uses the judged status: each of the two is listed under its own.
    interrupted = client.get("/?status=INTERRUPTED").text
    assert "/missions/m-killed" in interrupted and "/missions/m-alive" not in interrupted
    running = client.get("/?status=RUNNING").text
    assert "/missions/m-alive" in running and "/missions/m-killed" not in running
