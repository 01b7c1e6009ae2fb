"""Consuming through the native library: a Python ring consumer and bus
subscriber against Go producers that block on them (so Python's cursor
stores and futex wakes must reach Go)."""

import time
import unittest

from _fixture import Child, item, remove, unique_spec

import shmkit

try:
    from shmkit import native
except ImportError as e:  # no gcc, no prebuilt library
    native = None
    why = str(e)


@unittest.skipIf(native is None, "native library unavailable")
class NativeTest(unittest.TestCase):
    def spec(self, prefix):
        s = unique_spec(prefix)
        self.addCleanup(remove, s)
        return s

    def test_ring_consumer_wakes_blocked_go_producer(self):
        spec = self.spec("nring")
        n = 3000
        child = Child("ring-produce", spec, 8, n)
        self.addCleanup(child.kill)
        self.assertEqual(child.read_json(), {"ready": True})
        got, parked = [], 0
        with native.RingConsumer.open(spec) as c:
            st = c.ring.stats()
            self.assertEqual(st["consumer"].pid, __import__("os").getpid())
            while len(got) < n:
                if len(got) % 500 == 0:
                    time.sleep(0.05)  # let the producer fill up and park
                    parked += c.ring.stats()["producer_waiting"]
                got.extend(c.pop_batch(3, timeout=30))
        self.assertGreater(parked, 0, "the Go producer never parked: the wake path was not exercised")
        self.assertEqual(child.finish()[-1], {"pushed": n})
        self.assertEqual(got, [item(i) for i in range(n)])

    def test_consumer_role_is_exclusive(self):
        spec = self.spec("nrole")
        child = Child("ring-produce", spec, 8, 1)
        self.addCleanup(child.kill)
        child.read_json()
        with native.RingConsumer.open(spec) as c:
            with self.assertRaises(native.RoleTaken):
                native.RingConsumer.open(spec)
            self.assertEqual(c.pop(timeout=30), item(0))
        child.finish()
        with shmkit.Ring.open(spec) as r:
            self.assertEqual(r.stats()["consumer"].pid, 0)  # released at close
            self.assertEqual(r.head(), 1)

    def test_bus_subscriber_holds_block_publisher(self):
        spec = self.spec("nbus")
        n = 2000
        child = Child("bus", spec, 8, n, "block", "sub")
        self.addCleanup(child.kill)
        self.assertEqual(child.read_json(), {"ready": True})
        with native.BusSubscriber.open(spec) as s:
            got, parked = [], 0
            for m in s:
                got.append(m)
                if len(got) % 400 == 0:
                    time.sleep(0.05)  # the publisher must wait for us
                    parked += s.bus.stats()["publisher_waiting"]
            self.assertGreater(parked, 0, "the Go publisher never parked")
            self.assertEqual(s.missed, 0)
        self.assertEqual(child.finish()[-1], {"published": n})
        self.assertEqual(got, [item(i) for i in range(n)])
        with shmkit.Bus.open(spec) as b:
            self.assertEqual(b.subscribers(), [])  # record freed at close

    def test_bus_subscriber_overwrite(self):
        spec = self.spec("nbusow")
        n = 3000
        child = Child("bus", spec, 8, n, "overwrite", "sub")
        self.addCleanup(child.kill)
        child.read_json()
        got, lagged = [], 0
        with native.BusSubscriber.open(spec) as s:
            while True:
                try:
                    got.append(s.next(timeout=30))
                except shmkit.Lagged as e:
                    lagged += e.missed
                except shmkit.Closed:
                    break
        child.finish()
        self.assertEqual(len(got) + lagged, n)
        for m in got:
            self.assertEqual(m, item(m["Seq"]))
        self.assertEqual([m["Seq"] for m in got], sorted({m["Seq"] for m in got}))


if __name__ == "__main__":
    unittest.main()
