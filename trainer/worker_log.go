package trainer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// lineWriter writes whole timestamped lines for the operator from any
// goroutine.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer // nil discards
}

func (l *lineWriter) line(s string) {
	if l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s %s\n", time.Now().Format("15:04:05"), s)
}

// note writes a line for the operator only: retries, local problems.
func (w *worker) note(format string, args ...any) {
	w.out.line(fmt.Sprintf(format, args...))
}

// say writes a line for the operator and queues it for the run's log on the
// server, where the person who owns the run reads it.
func (w *worker) say(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	w.out.line(s)
	if w.logs != nil {
		w.logs.add(cutUTF8(strings.ReplaceAll(s, "\n", " "), maxLogLine))
	}
}
