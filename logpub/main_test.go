package logpub

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if runHelperProcess() {
		return
	}
	// lumberjack v2.2.1 starts one mill goroutine per Logger on its first
	// rotation and never stops it (Logger.Close does not); it is idle.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}
