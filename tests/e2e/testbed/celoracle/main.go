// Command celoracle is the test bed's CEL oracle: Kubernetes' own code, at the test bed's pins, judging device
// selector expressions, so that gpupolicy's CEL can be compared with the real thing (issue 16).
//
// It reads one JSON document on stdin,
//
//	{"expressions": ["..."], "slices": [resource.k8s.io/v1 ResourceSlice objects]}
//
// and writes one JSON document on stdout, one entry per expression, in input order:
//
//	{"results": [{"expression": "...",
//	              "compile": {"ok": bool, "error": "...", "cost": N},
//	              "evalCompileError": "...",
//	              "devices": {"<pool>/<device>": {"matches": bool} | {"error": "..."}}}]}
//
// "compile" is what the API server does to a NEW selector: the DeviceClass validation itself
// (k8s.io/kubernetes/pkg/apis/resource/validation.ValidateDeviceClass on a class holding only this selector), so
// the length limit, the compile in the NewExpressions environment and the cost check against
// CELSelectorExpressionMaxCost are the real ones, and "error" is the validation's error text. "cost" is the
// estimate that validation compares with the limit (the same compile, NewExpressions environment).
//
// "devices" is what the structured allocator does per device: the scheduler's CEL cache compiles the expression
// in the StoredExpressions environment without a cost estimate, then DeviceMatches runs on each device of the
// slices with the slice's driver, attributes, capacity and allowMultipleAllocations; an error is reported as the
// allocator reports it (cel.EnhanceRuntimeError). When that compile fails, "devices" is empty and
// "evalCompileError" carries its error.
//
// Feature gates are the API server's defaults, which is what the test bed runs for the gates that matter here
// (DRAConsumableCapacity is on by default, DRAListTypeAttributes off).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/cel/environment"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	dracel "k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/kubernetes/pkg/apis/resource"
	"k8s.io/kubernetes/pkg/apis/resource/validation"
	"k8s.io/kubernetes/pkg/features"
)

type input struct {
	Expressions []string                    `json:"expressions"`
	Slices      []resourceapi.ResourceSlice `json:"slices"`
}

type compileVerdict struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Cost  uint64 `json:"cost"`
}

type deviceResult struct {
	Matches *bool  `json:"matches,omitempty"`
	Error   string `json:"error,omitempty"`
}

type result struct {
	Expression       string                  `json:"expression"`
	Compile          compileVerdict          `json:"compile"`
	EvalCompileError string                  `json:"evalCompileError,omitempty"`
	Devices          map[string]deviceResult `json:"devices"`
}

type output struct {
	Results []result `json:"results"`
}

func gateFeatures() dracel.Features {
	return dracel.Features{
		EnableConsumableCapacity: utilfeature.DefaultFeatureGate.Enabled(features.DRAConsumableCapacity),
		EnableListTypeAttributes: utilfeature.DefaultFeatureGate.Enabled(features.DRAListTypeAttributes),
	}
}

// validate runs the API server's validation of a new DeviceClass whose only selector is the expression.
func validate(expression string) compileVerdict {
	class := &resource.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: "celoracle"},
		Spec: resource.DeviceClassSpec{
			Selectors: []resource.DeviceSelector{{CEL: &resource.CELDeviceSelector{Expression: expression}}},
		},
	}
	verdict := compileVerdict{OK: true}
	if errs := validation.ValidateDeviceClass(class); len(errs) > 0 {
		verdict.OK = false
		verdict.Error = errs.ToAggregate().Error()
	}
	envType := environment.NewExpressions
	compiled := dracel.GetCompiler(gateFeatures()).CompileCELExpression(expression, dracel.Options{EnvType: &envType})
	verdict.Cost = compiled.MaxCost
	return verdict
}

// evaluate does what the allocator's selectorsMatch does for each device of the slices.
func evaluate(ctx context.Context, expression string, slices []resourceapi.ResourceSlice) (map[string]deviceResult, string) {
	devices := map[string]deviceResult{}
	// The scheduler's cache: cel.NewCache(...).GetOrCompile = StoredExpressions, no cost estimation.
	expr := dracel.GetCompiler(gateFeatures()).CompileCELExpression(expression, dracel.Options{DisableCostEstimation: true})
	if expr.Error != nil {
		return devices, expr.Error.Error()
	}
	for _, slice := range slices {
		for _, d := range slice.Spec.Devices {
			key := slice.Spec.Pool.Name + "/" + d.Name
			matches, _, err := expr.DeviceMatches(ctx, dracel.Device{
				Driver:                   slice.Spec.Driver,
				AllowMultipleAllocations: d.AllowMultipleAllocations,
				Attributes:               d.Attributes,
				Capacity:                 d.Capacity,
			})
			if err != nil {
				devices[key] = deviceResult{Error: dracel.EnhanceRuntimeError(err).Error()}
				continue
			}
			devices[key] = deviceResult{Matches: &matches}
		}
	}
	return devices, ""
}

func run() error {
	var in input
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	ctx := context.Background()
	out := output{Results: make([]result, 0, len(in.Expressions))}
	for _, expression := range in.Expressions {
		devices, evalErr := evaluate(ctx, expression, in.Slices)
		out.Results = append(out.Results, result{
			Expression:       expression,
			Compile:          validate(expression),
			EvalCompileError: evalErr,
			Devices:          devices,
		})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "celoracle:", err)
		os.Exit(1)
	}
}
