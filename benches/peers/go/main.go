// Go's execution tracer under the load benches/trace.rs part 3 puts on
// rtcore's: trace.Start / trace.Stop latency with busy goroutines (a mutex
// loop that yields every 1000 rounds) and goroutines blocked reading empty
// pipes, GOMAXPROCS as the environment sets it, the trace written to
// io.Discard. The bench builds this program and parses its last line:
//
//	StartTrace median <d> p99 <d>; StopTrace median <d> p99 <d>
//
// Run alone: go run . [-cycles N] [-busy N] [-blocked N] [-gap 200us]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/trace"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// at returns the q-quantile of ds (nearest rank below).
func at(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*q)]
}

func main() {
	cycles := flag.Int("cycles", 1000, "start/stop cycles timed (after 10 untimed)")
	busy := flag.Int("busy", 16, "busy goroutines")
	blocked := flag.Int("blocked", 8, "goroutines blocked in a pipe read")
	gap := flag.Duration("gap", 200*time.Microsecond, "traced time between start and stop")
	flag.Parse()

	var quit atomic.Bool
	var running sync.WaitGroup
	var mu sync.Mutex
	shared := 0
	for i := 0; i < *busy; i++ {
		running.Add(1)
		go func() {
			defer running.Done()
			for n := 1; !quit.Load(); n++ {
				mu.Lock()
				shared++
				mu.Unlock()
				if n%1000 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	var writers []*os.File
	for i := 0; i < *blocked; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			panic(err)
		}
		writers = append(writers, w)
		go func(r *os.File) {
			one := make([]byte, 1)
			_, _ = r.Read(one)
		}(r)
	}
	time.Sleep(50 * time.Millisecond)

	var starts, stops []time.Duration
	for c := 0; c < *cycles+10; c++ {
		t0 := time.Now()
		if err := trace.Start(io.Discard); err != nil {
			panic(err)
		}
		t1 := time.Now()
		time.Sleep(*gap)
		t2 := time.Now()
		trace.Stop()
		t3 := time.Now()
		if c >= 10 {
			starts = append(starts, t1.Sub(t0))
			stops = append(stops, t3.Sub(t2))
		}
	}
	quit.Store(true)
	running.Wait()
	for _, w := range writers {
		_, _ = w.Write([]byte{1})
	}
	fmt.Printf("go %s: %d busy + %d blocked goroutines, GOMAXPROCS %d, %d cycles, %v traced each\n",
		runtime.Version(), *busy, *blocked, runtime.GOMAXPROCS(0), *cycles, *gap)
	fmt.Printf("StartTrace median %v p99 %v; StopTrace median %v p99 %v\n",
		at(starts, 0.5), at(starts, 0.99), at(stops, 0.5), at(stops, 0.99))
}
