import unittest

from _fixture import have_numpy  # noqa: F401  (sets sys.path)

from shmkit import _xxhash
from shmkit.layout import LayoutError, codec_for, parse_layout

POINT = "amd64/le struct{X int64@0; Y float64@8; Name [16]uint8@16; Tags [3]uint16@32; Flag uint8@38; Z complex64@40}#48/8"


class XXHashTest(unittest.TestCase):
    def test_vectors(self):
        # From github.com/cespare/xxhash/v2.
        self.assertEqual(_xxhash.xxh64(b""), 0xEF46DB3751D8E999)
        self.assertEqual(_xxhash.xxh64(b"a"), 0xD24EC4F1A98C6E5B)
        self.assertEqual(_xxhash.xxh64(b"abc"), 0x44BC2CF5AD770999)
        self.assertEqual(_xxhash.xxh64(b"x" * 100), 0x92F0DE5A88A3C094)

    def test_streaming_matches_one_shot(self):
        data = bytes(range(256)) * 3
        for cut in (0, 1, 7, 31, 32, 33, 100, 500):
            h = _xxhash.XXH64().update(data[:cut]).update(data[cut:]).digest()
            self.assertEqual(h, _xxhash.xxh64(data), cut)


class LayoutTest(unittest.TestCase):
    def test_parse(self):
        p = parse_layout(POINT)
        self.assertEqual((p.arch, p.order), ("amd64", "le"))
        t = p.type
        self.assertEqual((t.size, t.align), (48, 8))
        self.assertEqual([f.name for f in t.fields], ["X", "Y", "Name", "Tags", "Flag", "Z"])
        self.assertEqual(t.fields[3].type.length, 3)
        self.assertEqual(t.fields[3].type.elem.text, "uint16")
        self.assertEqual(t.fields[5].off, 40)

    def test_errors(self):
        for bad, want in [
            ("uint64", "no architecture prefix"),
            ("amd64/xx uint64", "not ARCH/le"),
            ("amd64/le uint65", "unknown type"),
            ("amd64/le uint64 ", "trailing text"),
            ("amd64/le [x]uint8", "want a number"),
            ("amd64/le struct{A uint8@0#1/1", "want ; or }"),
            ("amd64/le struct{A uint8}#1/1", "want @"),
            ("amd64/le " + "[1]" * 70 + "uint8", "nested too deeply"),
            ("amd64/le [99999999999999]uint64", "array too large"),
        ]:
            with self.subTest(bad=bad[:40]):
                with self.assertRaisesRegex(LayoutError, want):
                    parse_layout(bad)

    def test_codec(self):
        c = codec_for(POINT)
        self.assertEqual(c.size, 48)
        self.assertEqual(c.format, "<qd16s3HB1xff")
        v = {"X": -3, "Y": 2.5, "Name": b"hi", "Tags": [1, 2, 3], "Flag": 1, "Z": 1 - 2j}
        b = c.encode(v)
        self.assertEqual(len(b), 48)
        out = c.decode(b)
        self.assertEqual(out["Name"], b"hi" + b"\x00" * 14)
        out["Name"] = b"hi"
        self.assertEqual(out, v)

    def test_blank_fields_and_nesting(self):
        c = codec_for("arm64/le struct{A uint8@0; _ [3]uint8@1; B [2]struct{X int32@0; Y uint16@4}#8/4@4; C int(8)@24}#32/8")
        self.assertEqual(c.size, 32)
        v = {"A": 1, "B": [{"X": -1, "Y": 2}, {"X": 3, "Y": 4}], "C": -9}
        self.assertEqual(c.decode(c.encode(v)), v)

    def test_overlapping_fields_rejected(self):
        with self.assertRaises(LayoutError):
            codec_for("amd64/le struct{A uint64@0; B uint64@4}#16/8")
        with self.assertRaises(LayoutError):
            codec_for("amd64/le struct{A uint64@0; B uint64@8}#8/8")

    def test_spans(self):
        t = parse_layout("amd64/le struct{A uint32@0; B uint16@4}#8/4").type
        self.assertEqual(t.spans(), [(0, 6)])
        t = parse_layout("amd64/le [2]struct{A uint8@0; B uint32@4}#8/4").type
        self.assertEqual(t.spans(), [(0, 1), (4, 5), (12, 4)])

    @unittest.skipUnless(have_numpy(), "numpy is not installed")
    def test_numpy_dtype(self):
        from shmkit.layout import numpy_dtype

        d = numpy_dtype(parse_layout(POINT))
        self.assertEqual(d.itemsize, 48)
        self.assertEqual(d.fields["Z"][1], 40)
        self.assertEqual(d.fields["Tags"][0].shape, (3,))
        d = numpy_dtype(parse_layout("amd64/le struct{A uint8@0; _ [7]uint8@1; B uint64@8}#16/8"))
        self.assertEqual(d.names, ("A", "B"))


if __name__ == "__main__":
    unittest.main()
