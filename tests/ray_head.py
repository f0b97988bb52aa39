"""A local Ray cluster for the tests: ``python tests/ray_head.py NUM_CPUS`` starts one with
``ray.init`` (no dashboard, a small object store, its files under a fresh /tmp folder), prints
its address on stdout, and shuts it down when stdin closes or SIGTERM comes: the test that
started it ends it, and a test run that dies takes it along (its pipe closes).

Run it with RAY_AUTH_MODE=disabled and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (tests/test_ray.py
does): a cluster on the loopback address only, without writing a token into ~/.ray.
"""

import shutil
import signal
import sys
import tempfile
import threading

import ray


def main() -> None:
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    context = ray.init(num_cpus=int(sys.argv[1]), include_dashboard=False, _node_ip_address="127.0.0.1",
                       _temp_dir=temp, object_store_memory=80 * 1024**2, logging_level="WARNING")
    print(context.address_info["gcs_address"], flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
