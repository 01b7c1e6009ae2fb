//go:build !race

package shmmap_test

const raceEnabled = false
