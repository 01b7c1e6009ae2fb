package shmmap_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/shmkit/shmkit/internal/testproc"
	"github.com/shmkit/shmkit/shmmap"
)

// FuzzMapOps runs an operation sequence against a Map and a plain Go map
// and requires identical results, identical final contents and a table
// that passes Check. Keys come from a range larger than the one small
// shard can hold, so probe clusters, wrap-around, backward shifts and
// ErrFull are all common; ErrFull must come exactly when the shard is at
// its limit and the key is new.
//
//	go test -fuzz FuzzMapOps -fuzztime 30s ./shmmap
func FuzzMapOps(f *testing.F) {
	f.Add([]byte{0, 1, 1, 2, 1, 0, 3, 1, 0, 2, 1, 0})
	f.Add([]byte{0, 5, 9, 0, 69, 9, 0, 133, 9, 3, 5, 0, 2, 69, 0, 2, 133, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		// A memfd vanishes with its last mapping, so nothing leaks when
		// the fuzzing engine kills a worker in the middle of an input.
		spec := "memfd:" + testproc.UniqueName("fuzzmap")
		m, err := shmmap.Create[uint16, uint32](spec, 40, shmmap.WithShards(1), shmmap.WithSeed(uint64(len(ops))))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		st, err := m.Stats()
		if err != nil {
			t.Fatal(err)
		}
		model := map[uint16]uint32{}
		// checkFull requires err to be ErrFull exactly when inserting k
		// must fail, and reports whether it did.
		checkFull := func(op string, k uint16, present bool, err error) bool {
			full := !present && len(model) >= st.ShardLimit
			if full != errors.Is(err, shmmap.ErrFull) || (err != nil && !full) {
				t.Fatalf("%s %d with %d/%d keys: %v", op, k, len(model), st.ShardLimit, err)
			}
			return full
		}
		for i := 0; i+2 < len(ops); i += 3 {
			k, v := uint16(ops[i+1]%80), uint32(ops[i+2])
			want, present := model[k]
			switch ops[i] % 8 {
			case 0, 1:
				if !checkFull("put", k, present, m.Put(k, v)) {
					model[k] = v
				}
			case 2:
				got, ok := m.Get(k)
				if ok != present || got != want {
					t.Fatalf("get %d = %d %v, model %d %v", k, got, ok, want, present)
				}
			case 3:
				if ok := m.Delete(k); ok != present {
					t.Fatalf("delete %d = %v, model %v", k, ok, present)
				}
				delete(model, k)
			case 4:
				err := m.Update(k, func(cur uint32, ok bool) (uint32, bool) {
					if ok != present || cur != want {
						t.Fatalf("update %d saw %d %v, model %d %v", k, cur, ok, want, present)
					}
					return cur + v, v%2 == 0
				})
				if checkFull("update", k, present || v%2 == 1, err) {
					break
				}
				if v%2 == 0 {
					model[k] = want + v
				} else {
					delete(model, k)
				}
			case 5:
				sw, err := m.CompareAndSwap(k, v, v+1)
				if err != nil || sw != (present && want == v) {
					t.Fatalf("cas %d %d = %v %v, model %d %v", k, v, sw, err, want, present)
				}
				if sw {
					model[k] = v + 1
				}
			case 6:
				act, loaded, err := m.LoadOrStore(k, v)
				if checkFull("loadorstore", k, present, err) {
					break
				}
				if loaded != present || (loaded && act != want) || (!loaded && act != v) {
					t.Fatalf("loadorstore %d = %d %v %v, model %d %v", k, act, loaded, err, want, present)
				}
				if !loaded {
					model[k] = v
				}
			case 7:
				if v == 0 {
					if err := m.Clear(); err != nil {
						t.Fatal(err)
					}
					clear(model)
					continue
				}
				old, ok, err := m.LoadAndDelete(k)
				if err != nil || ok != present || old != want {
					t.Fatalf("loadanddelete %d = %d %v %v, model %d %v", k, old, ok, err, want, present)
				}
				delete(model, k)
			}
		}
		if got := maps.Collect(m.All()); !maps.Equal(got, model) {
			t.Fatalf("contents %v, model %v", got, model)
		}
		if m.Len() != len(model) {
			t.Fatalf("len %d, model %d", m.Len(), len(model))
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	})
}
