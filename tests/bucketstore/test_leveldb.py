"""What only the durable LevelDB backend promises."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from bucketstore import StoreLockedError, StorePathError, open_store


def test_data_survives_close_and_reopen(tmp_path):
    with open_store(tmp_path, "leveldb") as store:
        store.bucket("tds").set_many({"urn:a": b"1", "urn:b": b"2"})
        store.bucket("empty")
    with open_store(tmp_path, "leveldb") as store:
        assert store.buckets() == ["empty", "tds"]
        assert list(store.bucket("tds").items()) == [("urn:a", b"1"), ("urn:b", b"2")]


def test_second_open_of_the_same_directory_is_refused(tmp_path):
    with open_store(tmp_path, "leveldb"), pytest.raises(StoreLockedError, match=str(tmp_path)):
        open_store(tmp_path, "leveldb")


def test_open_held_by_another_process_is_refused(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreLockedError, match="already open"):
            open_store(tmp_path, "leveldb")
    finally:
        holder.kill()
        holder.wait()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from bucketstore import open_store
    store = open_store(sys.argv[1], "leveldb")
    print("open", flush=True)
    time.sleep(60)  # holds the store until the test kills it
    """
)


def test_directory_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorePathError, match="a-file"):
        open_store(blocker / "store", "leveldb")
    with pytest.raises(StorePathError, match="a-file"):
        open_store(blocker, "leveldb")


def test_directory_that_cannot_be_written(tmp_path):
    # procfs refuses new files even to root (CI runs as root, where chmod means nothing).
    with pytest.raises(StorePathError, match="/proc/self/fdinfo"):
        open_store("/proc/self/fdinfo", "leveldb")
    if os.geteuid() != 0:
        tmp_path.chmod(0o500)
        try:
            with pytest.raises(StorePathError, match=str(tmp_path)):
                open_store(tmp_path, "leveldb")
        finally:
            tmp_path.chmod(0o700)


def test_no_path_is_refused():
    with pytest.raises(StorePathError, match="directory"):
        open_store(None, "leveldb")


WRITER = textwrap.dedent(
    """
    import sys
    from bucketstore import open_store
    store = open_store(sys.argv[1], "leveldb")
    bucket = store.bucket("actions")
    for i in range(int(sys.argv[2])):
        bucket.set(f"a{i:05d}", b"accepted")
        if i % 100 == 99:
            bucket.set_many({f"b{i:05d}-{j}": b"batch" for j in range(10)})
    print("written", flush=True)
    sys.stdin.read()  # wait here until killed
    """
)


def test_sigkill_after_set_returned_loses_nothing(tmp_path):
    count = 2000
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "written"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    with open_store(tmp_path, "leveldb") as store:
        bucket = store.bucket("actions")
        assert bucket.count() == count + (count // 100) * 10
        assert bucket.get(f"a{count - 1:05d}") == b"accepted"
        assert bucket.get(f"b{count - 1:05d}-9") == b"batch"


def test_sync_option_writes_through(tmp_path):
    with open_store(tmp_path, "leveldb", sync=True) as store:
        store.bucket("b").set("k", b"v")
        store.bucket("b").set_many({"k2": b"v2"})
        store.bucket("b").delete("k")
    with open_store(tmp_path, "leveldb") as store:
        assert list(store.bucket("b").items()) == [("k2", b"v2")]
