"""Issue 13, nothing lost and nothing posted twice: a process killed mid-post (Slack slow to
answer, a real kill -9 of a subprocess), interrupted posts that did or did not reach Slack, a
bot without the history scope, and every kind of damaged ledger (null, {}, truncated, binary
garbage, [1,2], a hand edit, an old format over a new one): a clear error naming the file and
the fix, nothing posted, and the kept copy restoring it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel_pipeline.delivery.deliver import deliver_day, post_once
from sentinel_pipeline.delivery.ledger import (
    LEDGER_PATH,
    PREV_PATH,
    DeliveryLedger,
    LedgerError,
    alert_key,
    digest_key,
    main,
    message_key,
)
from sentinel_pipeline.delivery.routing import Router
from sentinel_pipeline.delivery.sinks import (
    EVENT_TYPE,
    DeliveryError,
    OutboxSink,
    Posted,
    SlackSink,
)
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.fake_slack import FakeSlack, fake_slack
from sentinel_pipeline_tests.test_slack_delivery import DAY, _alert, _write_costs, _write_day

TOKEN = "xoxb-test-secret-token-789"
D = DAY.isoformat()
N = 3  # alerts of the day
KEY = alert_key(_alert(N - 1))  # the largest alert: its message is posted first

# Deliver one day in a process of its own (the test kills it): argv = data dir, day, Slack URL
# ('' = outbox; then the process SIGKILLs itself right after the outbox file is written).
CHILD = """
import os, signal, sys
from sentinel_pipeline.delivery.deliver import deliver_day
from sentinel_pipeline.delivery.ledger import DeliveryLedger
from sentinel_pipeline.delivery.routing import Router
from sentinel_pipeline.delivery.sinks import OutboxSink, SlackSink
from sentinel_pipeline.storage import TableStore

data_dir, day, url = sys.argv[1:4]
store = TableStore(data_dir)
if url:
    sink = SlackSink(os.environ["SLACK_BOT_TOKEN"], url, timeout=60)
else:
    sink = OutboxSink(store)
    real_post = sink.post
    def post_then_die(*args, **kwargs):
        real_post(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    sink.post = post_then_die
deliver_day(store, sink, DeliveryLedger(store), Router("#cost-alerts"), day, charts=False)
print("finished")
"""


class Killed(BaseException):
    """Stands for the process dying right after a post reached its destination."""


class DyingSink:
    """A sink that dies (Killed) right after its post went through."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.destination = sink.destination
        self.in_flight_seconds = sink.in_flight_seconds

    def post(self, *args: Any, **kwargs: Any) -> Posted:
        self.sink.post(*args, **kwargs)
        raise Killed

    def find(self, *args: Any, **kwargs: Any) -> Posted | None:
        return self.sink.find(*args, **kwargs)

    def upload_png(self, *args: Any, **kwargs: Any) -> str:
        return self.sink.upload_png(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> str:
        return self.sink.update(*args, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> TableStore:
    store = TableStore(str(tmp_path / "data"))
    _write_day(store, [_alert(i) for i in range(N)])
    return store


def _deliver(store: TableStore, sink: Any, charts: bool = False, **kwargs: Any) -> Any:
    return deliver_day(store, sink, DeliveryLedger(store), Router("#cost-alerts"), D,
                       charts=charts, **kwargs)


def _ledger(store: TableStore) -> dict[str, Any]:
    return json.loads((Path(store.root) / LEDGER_PATH).read_text())


def _run_child(store: TableStore, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN}
    return subprocess.Popen([sys.executable, "-c", CHILD, store.root, D, url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ------------------------------------------------------------------ crash during a post
def test_killed_after_slack_got_the_post_is_adopted_not_posted_twice(
    store: TableStore, tmp_path: Path
) -> None:
    _write_costs(store, [f"Service {i:03d}" for i in range(N)])
    with fake_slack() as slack:
        slack.post_answer_delay = 30.0  # Slack keeps the message but answers late
        child = _run_child(store, slack.url)
        try:
            assert slack.post_received.wait(timeout=30), child.stderr
        finally:
            child.kill()  # kill -9 while the post is in Slack and the answer is not back
            child.wait(timeout=10)
        assert child.returncode == -9
        assert len(slack.in_channel("#cost-alerts")) == 1
        pending = _ledger(store)["pending"]
        assert list(pending) == [KEY] and "ended_epoch" not in pending[KEY]
        assert pending[KEY]["kind"] == "alert" and pending[KEY]["alerts"] == [KEY]
        assert _ledger(store)["alerts"] == {}

        slack.post_answer_delay = 0.0
        result = _deliver(store, SlackSink(TOKEN, slack.url, timeout=5), charts=True)
        assert (result.sent, result.adopted) == (N - 1, 1)
        messages = slack.in_channel("#cost-alerts")
        keys = [m["metadata"]["event_payload"]["key"] for m in messages]
        assert sorted(keys) == sorted(alert_key(_alert(i)) for i in range(N))  # each once
        message = messages[0]  # the one Slack kept while the process died
        assert message["metadata"]["event_type"] == EVENT_TYPE and keys[0] == KEY
        ledger = _ledger(store)
        assert ledger["pending"] == {}
        assert ledger["alerts"][KEY]["ts"] == message["ts"]
        assert ledger["alerts"][KEY]["adopted"] is True
        assert len(ledger["alerts"]) == N
        assert {e["ts"] for e in ledger["alerts"].values()} == {m["ts"] for m in messages}
        # The history was read by channel ID, from before the attempt, with metadata.
        history = [c for c in slack.history_calls if c["method"] == "conversations.history"]
        assert history and history[0]["channel"] == slack.channel_ids["#cost-alerts"]
        assert history[0]["include_all_metadata"] == "1"
        assert float(history[0]["oldest"]) < float(message["ts"])
        # The chart the dead process never uploaded goes into the adopted message's thread,
        # and each other alert's chart into its own.
        assert sorted(f["thread_ts"] for f in slack.files) == sorted(m["ts"] for m in messages)

        again = _deliver(store, SlackSink(TOKEN, slack.url, timeout=5))
        assert (again.sent, again.adopted, again.already_sent) == (0, 0, N)
        assert len(slack.posts) == N
    text = (Path(store.root) / LEDGER_PATH).read_text()
    assert TOKEN not in text


def test_outbox_killed_after_writing_is_adopted_not_written_twice(store: TableStore) -> None:
    child = _run_child(store, "")
    child.wait(timeout=60)
    out = child.stdout.read() if child.stdout else ""
    assert child.returncode == -9 and "finished" not in out
    outbox = sorted((Path(store.root) / "outbox").glob("*.json"))
    assert len(outbox) == 1 and list(_ledger(store)["pending"]) == [KEY]

    result = _deliver(store, OutboxSink(store))
    assert (result.sent, result.adopted) == (N - 1, 1)
    after = sorted((Path(store.root) / "outbox").glob("*.json"))
    assert len(after) == N and outbox[0] in after  # the first file kept, not written twice
    assert _ledger(store)["alerts"][KEY]["reference"] == str(outbox[0])
    assert json.loads(outbox[0].read_text())["metadata"]["event_payload"]["key"] == KEY


def test_interrupted_thread_reply_and_digest_are_found_not_reposted(store: TableStore) -> None:
    """A busy day's overflow (here every alert: no per-alert messages) is one day message; a
    rerun's further alerts go in its thread, and that reply is adopted after a crash."""
    with fake_slack() as slack:
        sink = SlackSink(TOKEN, slack.url, timeout=5)
        _deliver(store, sink, max_messages=0)
        root_ts = slack.messages[0]["ts"]
        assert slack.messages[0]["metadata"]["event_payload"]["key"] == message_key(
            D, "#cost-alerts")
        _write_day(store, [_alert(i) for i in range(N + 1)])  # a rerun finds one more
        with pytest.raises(Killed):
            _deliver(store, DyingSink(sink), max_messages=0)
        assert len(slack.messages) == 2 and slack.messages[1]["thread_ts"] == root_ts
        result = _deliver(store, sink, max_messages=0)
        assert (result.sent, result.adopted) == (0, 1) and len(slack.messages) == 2
        assert any(c["method"] == "conversations.replies" and c["ts"] == root_ts
                   for c in slack.history_calls)

        message = {"text": "digest", "blocks": []}
        ledger = DeliveryLedger(store)
        with pytest.raises(Killed):
            post_once(store, DyingSink(sink), ledger, digest_key("2025-W09"), "digest",
                      "#cost-alerts", "digest-2025-W09", message)
        posted, adopted = post_once(store, sink, DeliveryLedger(store), digest_key("2025-W09"),
                                    "digest", "#cost-alerts", "digest-2025-W09", message)
        assert adopted and posted.ts == slack.messages[-1]["ts"] and len(slack.messages) == 3
        assert DeliveryLedger(store).digest_sent("2025-W09")


def _pending(store: TableStore, age_seconds: float, ended: bool = False) -> None:
    """The ledger a process leaves when it dies after recording the attempt, before posting."""
    ledger = DeliveryLedger(store)
    ledger.begin(KEY, "alert", "#cost-alerts", "slack", D, [KEY], day=D)
    data = ledger.data
    data["pending"][KEY]["attempted_epoch"] = time.time() - age_seconds
    if ended:
        data["pending"][KEY]["ended_epoch"] = time.time()
    from sentinel_pipeline.delivery.ledger import write_state

    write_state(store, data, ledger.sequence + 1)


def test_attempt_not_in_the_channel_waits_while_in_flight_then_is_posted_once(
    store: TableStore,
) -> None:
    with fake_slack() as slack:
        sink = SlackSink(TOKEN, slack.url, timeout=5)
        _pending(store, age_seconds=10)  # its process may still be sending it
        with pytest.raises(DeliveryError, match="may still be on its way"):
            _deliver(store, sink)
        assert slack.posts == []
        _pending(store, age_seconds=sink.in_flight_seconds + 1)  # no copy can still arrive
        result = _deliver(store, sink)
        assert result.sent == N and len(slack.posts) == N
        keys = [p["metadata"]["event_payload"]["key"] for p in slack.posts]
        assert keys.count(KEY) == 1 and len(set(keys)) == N
        assert _ledger(store)["pending"] == {}


def test_history_refused_never_reposts_names_the_scope_and_can_be_settled(
    store: TableStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_slack() as slack:
        sink = SlackSink(TOKEN, slack.url, timeout=5)
        _pending(store, age_seconds=7 * 86400)  # old: still not reposted blindly
        slack.method_script["conversations.list"] = [(200, {
            "ok": False, "error": "missing_scope", "needed": "channels:read",
            "provided": "chat:write,files:write"}, {})]
        slack.method_script["conversations.history"] = [(200, {
            "ok": False, "error": "missing_scope", "needed": "channels:history",
            "provided": "chat:write,files:write"}, {})]
        slack.channel_id("#cost-alerts")  # the channel exists
        with pytest.raises(DeliveryError) as info:
            _deliver(store, sink)
        message = str(info.value)
        assert "channels:read" in message and "groups:history" in message
        assert f"resolve '{KEY}'" in message and TOKEN not in message
        assert info.value.channel_only  # other channels and days go on
        assert slack.posts == [] and list(_ledger(store)["pending"]) == [KEY]
        # With the channel ID known (an earlier message, or an ID in the routes file), the
        # history itself is refused: the same answer, naming that scope.
        with pytest.raises(DeliveryError, match="channels:history"):
            _deliver_by_id(store, sink, slack)
        assert slack.posts == []

        # Someone looked at the channel: not there. Settled by hand, posted once.
        assert main(["--data-dir", store.root, "resolve", KEY, "--not-posted"]) == 0
        assert "marked not posted" in capsys.readouterr().out
        assert _deliver(store, sink).sent == N and len(slack.posts) == N


def _deliver_by_id(store: TableStore, sink: SlackSink, slack: FakeSlack) -> Any:
    ledger = DeliveryLedger(store)
    ledger.data["pending"][KEY]["channel_id"] = slack.channel_id("#cost-alerts")
    return deliver_day(store, sink, ledger, Router("#cost-alerts"), D, charts=False)


def test_refusal_slack_answered_drops_the_attempt(store: TableStore) -> None:
    with fake_slack() as slack:
        slack.script.append((200, {"ok": False, "error": "channel_not_found"}, {}))
        with pytest.raises(DeliveryError, match="does not exist"):
            _deliver(store, SlackSink(TOKEN, slack.url, timeout=5))
        assert _ledger(store)["pending"] == {}  # certainly not posted: no check needed
        assert _deliver(store, SlackSink(TOKEN, slack.url, timeout=5)).sent == N
        assert slack.history_calls == []


# ------------------------------------------------------------------------ damaged ledger
def _delivered_once(store: TableStore) -> bytes:
    """Deliver the day to the outbox; the good ledger's bytes."""
    assert _deliver(store, OutboxSink(store)).sent == N
    return (Path(store.root) / LEDGER_PATH).read_bytes()


@pytest.mark.parametrize(
    ("damage", "needle"),
    [(b"null", "holds null"),
     (b"{}", "empty object"),
     (None, "not valid JSON"),  # truncated: the first half of the good file
     (b"\x00\xff\xfe\x89PNG\x1a garbage \xc3", "not UTF-8"),
     (b"[1,2]", "holds an array"),
     (b"", "empty file")],
    ids=["null", "empty-object", "truncated", "garbage", "array", "empty-file"],
)
def test_damaged_ledger_posts_nothing_names_the_file_and_restores(
    store: TableStore, damage: bytes | None, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _delivered_once(store)
    path = Path(store.root) / LEDGER_PATH
    path.write_bytes(good[: len(good) // 2] if damage is None else damage)
    outbox = sorted((Path(store.root) / "outbox").glob("*.json"))
    with pytest.raises(LedgerError) as info:
        _deliver(store, OutboxSink(store))
    message = str(info.value)
    assert str(path) in message and needle in message
    assert "nothing is posted" in message and "ledger.prev.json" in message
    assert f"restore --data-dir {store.root}" in message
    assert sorted((Path(store.root) / "outbox").glob("*.json")) == outbox

    assert main(["--data-dir", store.root, "restore"]) == 0
    assert "Restored" in capsys.readouterr().out
    [kept] = (Path(store.root) / "_delivery").glob("ledger.damaged-*.json")
    assert kept.read_bytes() == (good[: len(good) // 2] if damage is None else damage)
    assert json.loads(path.read_bytes())["alerts"] == json.loads(good)["alerts"]
    result = _deliver(store, OutboxSink(store))
    assert (result.sent, result.already_sent) == (0, N)
    assert sorted((Path(store.root) / "outbox").glob("*.json")) == outbox


def test_ledger_without_a_good_copy_is_refused_with_the_backup_fix(store: TableStore) -> None:
    _delivered_once(store)
    (Path(store.root) / LEDGER_PATH).write_bytes(b"{}")
    (Path(store.root) / PREV_PATH).write_bytes(b"{\"alerts\": ")
    with pytest.raises(LedgerError, match="no good copy to restore.*backup of the data dir"):
        DeliveryLedger(store)
    assert main(["--data-dir", store.root, "restore"]) == 1


@pytest.mark.parametrize("legacy", [b"null", b"{}"])
def test_null_or_empty_ledger_of_an_old_release_is_damage_too(
    store: TableStore, legacy: bytes
) -> None:
    path = Path(store.root) / LEDGER_PATH
    path.parent.mkdir(parents=True)
    path.write_bytes(legacy)  # no copy: never written by this release, still never trusted
    with pytest.raises(LedgerError, match="no good copy"):
        _deliver(store, OutboxSink(store))
    assert not (Path(store.root) / "outbox").exists()


def test_hand_edit_shrink_and_old_format_over_a_new_ledger_are_refused(
    store: TableStore,
) -> None:
    good = json.loads(_delivered_once(store))
    path = Path(store.root) / LEDGER_PATH
    edited = {**good, "alerts": dict(list(good["alerts"].items())[1:])}  # one alert removed
    path.write_text(json.dumps(edited))
    with pytest.raises(LedgerError, match=f"says it holds {N} entries but holds {N - 1}"):
        DeliveryLedger(store)
    path.write_text(json.dumps({**edited, "count": N - 1}))  # the count "fixed" too
    with pytest.raises(LedgerError, match="checksum does not match"):
        DeliveryLedger(store)
    old = {"version": 2, "alerts": edited["alerts"], "messages": {}, "digests": {}}
    path.write_text(json.dumps(old))
    with pytest.raises(LedgerError, match="format of an earlier release"):
        DeliveryLedger(store)
    path.unlink()
    with pytest.raises(LedgerError, match="missing while ledger.prev.json exists"):
        DeliveryLedger(store)


def test_interrupted_ledger_update_uses_the_newer_copy(store: TableStore) -> None:
    first = _delivered_once(store)
    _write_day(store, [_alert(i) for i in range(N + 1)])
    assert _deliver(store, OutboxSink(store)).sent == 1
    # The crash between the two writes: the copy has the update, ledger.json does not.
    (Path(store.root) / LEDGER_PATH).write_bytes(first)
    ledger = DeliveryLedger(store)
    assert len(ledger.alerts) == N + 1 and "interrupted" in ledger.notes[0]
    result = _deliver(store, OutboxSink(store))
    assert (result.sent, result.already_sent) == (0, N + 1)


def test_first_run_without_a_ledger_is_fine(store: TableStore) -> None:
    assert DeliveryLedger(store).sequence == 0
    assert _deliver(store, OutboxSink(store)).sent == N
    assert json.loads((Path(store.root) / PREV_PATH).read_text())["sequence"] >= 1
