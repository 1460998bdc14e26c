package kube

import (
	"reflect"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	for _, tc := range []struct {
		name    string
		text    string
		want    Metrics
		wantErr bool
	}{
		{name: "empty", text: "# HELP x y\n# TYPE x counter\n\n", want: nil},
		{
			name: "plain and labelled",
			text: "up 1\napiserver_watch_cache_consistent_read_total{fallback=\"false\",group=\"\",resource=\"configmaps\",success=\"true\"} 7\n",
			want: Metrics{
				{Name: "up", Labels: map[string]string{}, Value: 1},
				{Name: "apiserver_watch_cache_consistent_read_total", Labels: map[string]string{"fallback": "false", "group": "", "resource": "configmaps", "success": "true"}, Value: 7},
			},
		},
		{
			name: "escapes, timestamp and exponent",
			text: `m{path="a\"b\\c\nd",x="{,}"} 1.5e+06 1700000000000` + "\n",
			want: Metrics{{Name: "m", Labels: map[string]string{"path": "a\"b\\c\nd", "x": "{,}"}, Value: 1.5e6}},
		},
		{name: "no value", text: "m{a=\"b\"}\n", wantErr: true},
		{name: "bad value", text: "m x\n", wantErr: true},
		{name: "unterminated label", text: "m{a=\"b} 1\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetrics(tc.text)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMetricsSum(t *testing.T) {
	m, err := ParseMetrics(`r{resource="configmaps",success="true"} 2
r{resource="configmaps",success="false"} 3
r{resource="secrets",success="true"} 5
other{resource="configmaps"} 100
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"all", nil, 10},
		{"one label", map[string]string{"resource": "configmaps"}, 5},
		{"two labels", map[string]string{"resource": "configmaps", "success": "true"}, 2},
		{"absent series", map[string]string{"resource": "pods"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Sum("r", tc.match); got != tc.want {
				t.Errorf("Sum(r, %v) = %v, want %v", tc.match, got, tc.want)
			}
		})
	}
}
