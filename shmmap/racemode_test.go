package shmmap_test

import "github.com/shmkit/shmkit/internal/racemode"

// raceEnabled: see internal/racemode.
const raceEnabled = racemode.Enabled
