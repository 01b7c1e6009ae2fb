"""Header validation and the read-only structures, against segments made by
the Go fixture program."""

import os
import shutil
import struct
import tempfile
import threading
import unittest

from _fixture import Child, go_point, have_numpy, item, remove, run_fixture, unique_spec

import shmkit
from shmkit import segment as segmod


class SegmentFixture(unittest.TestCase):
    def spec(self, prefix: str) -> str:
        s = unique_spec(prefix)
        self.addCleanup(remove, s)
        return s


class HeaderTest(SegmentFixture):
    def setUp(self):
        self.src = self.spec("hdr")
        self.want = run_fixture("value", self.src)
        self.dir = tempfile.mkdtemp(prefix="shmkit-py-")
        self.addCleanup(shutil.rmtree, self.dir)
        with open("/dev/shm/" + self.src.split("/", 1)[1], "rb") as f:
            self.image = bytearray(f.read())

    def copy_with(self, patch=None) -> str:
        img = bytearray(self.image)
        if patch:
            patch(img)
        path = os.path.join(self.dir, f"seg{len(os.listdir(self.dir))}")
        with open(path, "wb") as f:
            f.write(img)
        return "file:" + path

    def test_valid_copy_opens(self):
        with shmkit.Value.open(self.copy_with()) as v:
            self.assertEqual(go_point(v.read()), self.want)
            h = v.seg.header
            self.assertEqual((h.kind, h.version, h.header_size), (shmkit.KIND_VALUE, 1, 464))
            self.assertEqual(h.checksum, segmod.header_checksum(bytes(self.image[:464]), bytes(self.image[464 : 464 + h.type_desc_len])))
            self.assertEqual(v.type.name, "main.Point")

    def test_rejections(self):
        def put(off, fmt, val):
            return lambda img: struct.pack_into(fmt, img, off, val)

        cases = [
            ("magic", put(0, "8s", b"NOTSHMKT"), shmkit.BadMagic),
            ("version", put(8, "<I", 2), shmkit.VersionError),
            ("checksum", put(328, "<Q", 1), shmkit.Corrupt),
            ("capacity (checksummed)", put(40, "<Q", 2), shmkit.Corrupt),
            ("type description (checksummed)", lambda img: img.__setitem__(470, img[470] ^ 1), shmkit.Corrupt),
            ("unknown state", put(336, "<I", 7), shmkit.Corrupt),
        ]
        for what, patch, exc in cases:
            with self.subTest(what):
                with self.assertRaises(exc):
                    shmkit.Value.open(self.copy_with(patch))

    def test_bad_region_caught_even_with_good_checksum(self):
        def patch(img):
            struct.pack_into("<Q", img, 200, 64)  # region 0 not 128-aligned
            h = segmod.header_checksum(bytes(img[:464]), bytes(img[464 : 464 + struct.unpack_from("<Q", img, 80)[0]]))
            struct.pack_into("<Q", img, 328, h)

        with self.assertRaisesRegex(shmkit.Corrupt, "region 0"):
            shmkit.Value.open(self.copy_with(patch))

    def test_truncated(self):
        spec = self.copy_with()
        path = spec[5:]
        os.truncate(path, 1000)  # header fits, segment size does not
        with self.assertRaises(shmkit.TooSmall):
            shmkit.Value.open(spec)

    def test_dead_creator_fails_at_once(self):
        # State INIT, creator a pid that cannot exist: NotReady immediately.
        def patch(img):
            img[: segmod.HEADER_SIZE] = bytes(segmod.HEADER_SIZE)
            struct.pack_into("<i4xQ", img, 48, 4194303, 1)
            struct.pack_into("<I", img, 336, segmod.STATE_INITIALIZING)

        with self.assertRaisesRegex(shmkit.NotReady, "died"):
            shmkit.open_segment(self.copy_with(patch), init_timeout=30)

    def test_live_creator_times_out(self):
        def patch(img):
            img[: segmod.HEADER_SIZE] = bytes(segmod.HEADER_SIZE)
            st = segmod._proc_stat(os.getpid())
            struct.pack_into("<i4xQ", img, 48, os.getpid(), st[1] if st else 0)
            struct.pack_into("<I", img, 336, segmod.STATE_INITIALIZING)

        with self.assertRaisesRegex(shmkit.NotReady, "still initializing"):
            shmkit.open_segment(self.copy_with(patch), init_timeout=0.05)

    def test_kind_mismatch(self):
        with self.assertRaises(shmkit.TypeMismatch):
            shmkit.Ring.open(self.src)

    def test_symlink_refused(self):
        link = os.path.join(self.dir, "link")
        os.symlink(self.copy_with()[5:], link)
        with self.assertRaises(shmkit.Untrusted):
            shmkit.Value.open("file:" + link)

    def test_specs(self):
        self.assertEqual(segmod.spec_path("posix:/a"), ("/dev/shm/a", None))
        self.assertEqual(segmod.spec_path("posix:a"), ("/dev/shm/a", None))
        self.assertEqual(segmod.spec_path("fd:3"), ("", 3))
        for bad in ("posix:/", "posix:/a/b", "posix:/..", "nope", "x:y", "fd:x"):
            with self.subTest(bad):
                with self.assertRaises(ValueError):
                    segmod.spec_path(bad)
        with self.assertRaises(NotImplementedError):
            segmod.spec_path("sysv:0x1234")

    def test_fd_spec(self):
        fd = os.open("/dev/shm/" + self.src.split("/", 1)[1], os.O_RDONLY)
        self.addCleanup(os.close, fd)
        with shmkit.Value.open(f"fd:{fd}") as v:
            self.assertEqual(go_point(v.read()), self.want)


class ValueTest(SegmentFixture):
    def test_read(self):
        spec = self.spec("val")
        want = run_fixture("value", spec)
        with shmkit.Value.open(spec) as v:
            self.assertEqual(go_point(v.read()), want)
            self.assertEqual(v.type.struct_format, "<qd16s3HB1xff")
            self.assertEqual(len(v.raw()), 48)

    @unittest.skipUnless(have_numpy(), "numpy is not installed")
    def test_numpy(self):
        spec = self.spec("valnp")
        want = run_fixture("value", spec)
        v = shmkit.Value.open(spec)
        a = v.array()
        self.assertEqual(int(a["X"]), want["X"])
        self.assertEqual(list(a["Tags"]), want["Tags"])
        self.assertEqual(complex(a["Z"]), complex(*want["Z"]))
        del a
        v.close()


class RingTest(SegmentFixture):
    def test_peek(self):
        spec = self.spec("ring")
        want = run_fixture("ring", spec, 8, 11, 5)  # wraps: 11 pushed, 5 popped
        with shmkit.Ring.open(spec) as r:
            st = r.stats()
            self.assertEqual((st["head"], st["tail"], st["len"], st["cap"]), (5, 11, 6, 8))
            self.assertEqual(st["producer"].pid, 0)  # released at Close
            first, items = r.peek()
            self.assertEqual(first, 5)
            self.assertEqual(items, want["items"])
            self.assertEqual(r.peek(2)[1], want["items"][:2])
            self.assertEqual(r.peek(0), (5, []))

    @unittest.skipUnless(have_numpy(), "numpy is not installed")
    def test_numpy(self):
        spec = self.spec("ringnp")
        run_fixture("ring", spec, 8, 6, 0)
        r = shmkit.Ring.open(spec)
        a = r.array()
        self.assertEqual(list(a["Seq"][:6]), list(range(6)))
        self.assertEqual(a.dtype.itemsize, 24)
        del a
        r.close()


class MapTest(SegmentFixture):
    def check(self, m, want):
        self.assertEqual(len(m), len(want))
        got = {str(k): v for k, v in m.snapshot()}
        self.assertEqual(got, want)
        for k, v in list(want.items())[:50]:
            self.assertEqual(m.get(int(k)), v)
        self.assertIsNone(m.get(12345))
        self.assertEqual(m.get(12345, "none"), "none")

    def test_small(self):
        spec = self.spec("map")
        want = run_fixture("map", spec, 100)
        with shmkit.Map.open(spec) as m:
            self.assertEqual(m.shards, 1)
            self.check(m, want)

    def test_sharded(self):
        spec = self.spec("mapbig")
        want = run_fixture("map", spec, 5000)
        with shmkit.Map.open(spec) as m:
            self.assertGreater(m.shards, 1)
            self.check(m, want)

    def test_struct_key_with_padding(self):
        spec = self.spec("map2")
        want = run_fixture("map2", spec, 40)
        with shmkit.Map.open(spec) as m:
            self.assertEqual(m.shards, 4)
            self.assertEqual(m.key_type.parsed.type.spans(), [(0, 6)])
            d = m.to_dict()
            self.assertEqual(len(d), 40)
            for e in want:
                self.assertEqual(go_point(d[(e["A"], e["B"])]), e["V"])
                self.assertEqual(go_point(m.get({"A": e["A"], "B": e["B"]})), e["V"])
            self.assertIsNone(m.get({"A": 1, "B": 1}))


class BusReaderTest(SegmentFixture):
    def follow(self, cap, n, mode):
        spec = self.spec("bus")
        child = Child("bus", spec, cap, n, mode, "stdin")
        self.addCleanup(child.kill)
        self.assertEqual(child.read_json(), {"ready": True})
        with shmkit.Bus.open(spec) as bus:
            self.assertEqual(bus.stats()["overflow"], mode)
            rd = bus.reader()
            child.send("go")
            got = []
            while True:
                try:
                    got.append(rd.next(timeout=30))
                except shmkit.Lagged:
                    continue
                except shmkit.Closed:
                    break
            self.assertEqual(child.finish()[-1], {"published": n})
            self.assertEqual(bus.published(), n)
            self.assertTrue(bus.closed_for_writes())
        return got, rd.missed

    def check(self, got, missed, n):
        self.assertEqual(len(got) + missed, n)
        seqs = [m["Seq"] for m in got]
        self.assertEqual(seqs, sorted(set(seqs)))
        for m in got:
            self.assertEqual(m, item(m["Seq"]))

    def test_block_everything_fits(self):
        got, missed = self.follow(1024, 500, "block")
        self.assertEqual(missed, 0)
        self.assertEqual([m["Seq"] for m in got], list(range(500)))
        self.check(got, missed, 500)

    def test_overwrite_lapped(self):
        got, missed = self.follow(8, 3000, "overwrite")
        self.check(got, missed, 3000)

    def test_block_lapped(self):
        # A read-only reader does not hold a Block publisher back.
        got, missed = self.follow(8, 3000, "block")
        self.check(got, missed, 3000)


if __name__ == "__main__":
    unittest.main()
