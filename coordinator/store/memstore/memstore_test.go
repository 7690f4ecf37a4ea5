package memstore_test

import (
	"testing"

	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/coordinator/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) (func(*testing.T) store.Store, storetest.Corrupt) {
			d := &memstore.Data{}
			return func(*testing.T) store.Store { return d.Open() },
				func(_ *testing.T, topic bool, name string, b []byte) { d.Corrupt(topic, name, b) }
		},
	})
}
