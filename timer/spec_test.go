package timer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSpecValidate(t *testing.T) {
	sec := Duration(time.Second)
	bad := map[string]Spec{
		"empty name":     {Every: sec},
		"name spaces":    {Name: "a b", Every: sec},
		"name long":      {Name: strings.Repeat("a", MaxName+1), Every: sec},
		"nothing set":    {Name: "a"},
		"two set":        {Name: "a", Every: sec, Cron: "* * * * *"},
		"zero every":     {Name: "a", Every: 0, Cron: ""},
		"negative every": {Name: "a", Every: Duration(-time.Second)},
		"sub-ms every":   {Name: "a", Every: Duration(time.Microsecond)},
		"invalid cron":   {Name: "a", Cron: "61 * * * *"},
		"cron garbage":   {Name: "a", Cron: "every tuesday"},
		"cron TZ=":       {Name: "a", Cron: "TZ="},
		"bad tz":         {Name: "a", Cron: "0 * * * *", TZ: "Mars/Olympus"},
		"tz without":     {Name: "a", Every: sec, TZ: "UTC"},
		"scope":          {Name: "a", Every: sec, Scope: "galaxy"},
		"payload":        {Name: "a", Every: sec, Payload: strings.Repeat("p", MaxPayload+1)},
	}
	for name, sp := range bad {
		if err := sp.Validate(); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%s: Validate = %v, want ErrBadSpec", name, err)
		}
	}
	good := []Spec{
		{Name: "a", Every: sec},
		{Name: "b.c-d_e:f/g", Cron: "*/5 * * * * *", Scope: ScopeCluster},
		{Name: "c", Cron: "0 3 * * *", TZ: "Europe/Paris"},
		{Name: "d", Cron: "@hourly"},
		{Name: "e", At: time.Now()},
	}
	for _, sp := range good {
		if err := sp.Validate(); err != nil {
			t.Errorf("%s: %v", sp.Name, err)
		}
	}
}

func TestSpecNext(t *testing.T) {
	base := time.Date(2026, 3, 1, 10, 0, 3, 500, time.UTC)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	cases := []struct {
		sp   Spec
		want time.Time
	}{
		{Spec{Name: "e", Every: Duration(5 * time.Second)}, time.Date(2026, 3, 1, 10, 0, 5, 0, time.UTC)},
		{Spec{Name: "s", Cron: "*/10 * * * * *"}, time.Date(2026, 3, 1, 10, 0, 10, 0, time.UTC)},
		{Spec{Name: "m", Cron: "30 * * * *"}, time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)},
		{Spec{Name: "tz", Cron: "0 0 12 * * *", TZ: "Europe/Paris"}, time.Date(2026, 3, 1, 12, 0, 0, 0, paris)},
		{Spec{Name: "at", At: base.Add(time.Hour)}, base.Add(time.Hour)},
		{Spec{Name: "past", At: base.Add(-time.Hour)}, time.Time{}},
	}
	for _, c := range cases {
		got, err := c.sp.Next(base)
		if err != nil {
			t.Fatalf("%s: %v", c.sp.Name, err)
		}
		if !got.Equal(c.want) {
			t.Errorf("%s: Next = %v, want %v", c.sp.Name, got, c.want)
		}
	}
}
