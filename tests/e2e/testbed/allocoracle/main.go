// Command allocoracle is the test bed's allocation oracle: Kubernetes' structured allocator
// (k8s.io/dynamic-resource-allocation/structured, at the test bed's pins) driven the way the kube-scheduler's
// DynamicResources plugin drives it, so that gpupolicy's first-fit and optimal allocations can be compared with the
// real thing (issue 16, item 3).
//
// It reads one JSON document on stdin, {"scenarios": [scenario, ...]}, each scenario independent of the others,
//
//	{"mode": "schedule" | "pinned",
//	 "classes":   [resource.k8s.io/v1 DeviceClass],
//	 "slices":    [resource.k8s.io/v1 ResourceSlice],
//	 "allocated": [resource.k8s.io/v1 ResourceClaim with status.allocation],
//	 "nodes":     ["node name", ...],
//	 "pods":      [{"name": "...", "node": "...", "claims": [ResourceClaim, ...]}]}
//
// and writes {"scenarios": [{"pods": [{"name", "outcome", "node", "error", "attempts", "claims"}]}]}, scenarios and
// pods in input order.
//
// "schedule": for each pod in order, the nodes are tried in the given order; on each, Allocate runs for all the
// pod's claims with the state committed so far (the allocated claims plus every earlier pod's allocation, gathered
// as the scheduler's allocated-devices tracker does: admin-access results ignored, results with a shareID counted
// as shares with their consumed capacity, the rest as dedicated devices). The first node with a result wins
// ("outcome": "allocated"); a node where Allocate fails with an error that is not ErrFailedAllocationOnNode stops
// the pod there ("outcome": "error": the scheduler turns such an error into an Error status that aborts the pod's
// scheduling cycle, and the pod is retried later); when no node has a result, "outcome" is "unschedulable".
// "attempts" lists, per node tried, "allocated", "none", "failed-on-node" or "error". An Allocate call that runs
// past 10 s (the scheduler's default DRA filter timeout) ends the pod with "timeout", in both modes. The real scheduler filters
// the feasible nodes in parallel and picks among them by score; this program models the sequential, first-node
// policy that gpupolicy's first-fit baseline follows.
//
// "pinned": every pod names a node and every claim carries a proposed status.allocation. For each pod in order,
// the slices are cut down to what the proposal may use: the proposed devices, first in every pool and in the
// order of the proposal (claim by claim, result by result), then the devices already allocated (they hold
// shared counters; the allocator skips them as in use) and, when the proposal uses a request in allocationMode
// All, every other device of the node (All is judged against all of them). Allocate then runs on that node for the claims
// without their status. The allocator's depth-first search takes devices in pool order, so when the proposal is
// a valid allocation its first solution is exactly the proposal; "outcome" is "accepted" when the allocator's
// results equal the proposal's, in any order (request, driver, pool, device, consumed capacity, shareID or not),
// otherwise "rejected", with the allocator's own choice in "claims" (or "error"). The proposal is then
// committed, accepted or not, so each pod is judged on its own. This judges an allocation as one written
// directly into status.allocation: which subrequest the scheduler would have tried first, and selector errors on
// devices the proposal does not use, do not matter. When the allocator picks other devices only because a
// multi-allocatable device proposed for a later request also fits an earlier one (it is shared there first),
// other orders of the proposed devices are tried (up to 720); the proposal is accepted when the allocator
// chooses exactly it under one of them. When under every order tried the allocator allocates the pod within the
// proposed devices but never exactly as proposed (two requests of a claim on two multi-allocatable devices,
// where the allocator always shares the first one), "outcome" is "equivalent": the allocator confirms the pod
// fits on those devices, not the proposed split between requests.
//
// Objects get the API server's defaults first (allocationMode, count, toleration operator). Feature gates are the
// kube-scheduler's defaults (k8s.io/kubernetes/pkg/features through the scheduler's own feature struct and
// AllocatorFeatures), as the test bed runs them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	dracel "k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
	resourcev1 "k8s.io/kubernetes/pkg/apis/resource/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/dynamicresources"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/utils/ptr"
)

type podIn struct {
	Name   string                      `json:"name"`
	Node   string                      `json:"node,omitempty"`
	Claims []resourceapi.ResourceClaim `json:"claims"`
}

type input struct {
	Mode      string                      `json:"mode"`
	Classes   []resourceapi.DeviceClass   `json:"classes"`
	Slices    []resourceapi.ResourceSlice `json:"slices"`
	Allocated []resourceapi.ResourceClaim `json:"allocated"`
	Nodes     []string                    `json:"nodes"`
	Pods      []podIn                     `json:"pods"`
}

type attempt struct {
	Node    string `json:"node"`
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

type claimOut struct {
	Name       string                              `json:"name"`
	Allocation *resourceapi.DeviceAllocationResult `json:"allocation,omitempty"`
}

type podOut struct {
	Name     string     `json:"name"`
	Outcome  string     `json:"outcome"`
	Node     string     `json:"node,omitempty"`
	Error    string     `json:"error,omitempty"`
	Attempts []attempt  `json:"attempts,omitempty"`
	Claims   []claimOut `json:"claims"`
}

type output struct {
	Pods []podOut `json:"pods"`
}

type classLister map[string]*resourceapi.DeviceClass

func (l classLister) List() ([]*resourceapi.DeviceClass, error) {
	out := make([]*resourceapi.DeviceClass, 0, len(l))
	for _, c := range l {
		out = append(out, c)
	}
	return out, nil
}

func (l classLister) Get(name string) (*resourceapi.DeviceClass, error) {
	if c, ok := l[name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(resourceapi.Resource("deviceclasses"), name)
}

type oracle struct {
	features  structured.Features
	classes   classLister
	celCache  *dracel.Cache
	allocated []*resourceapi.ResourceClaim
}

func newOracle(in *input) *oracle {
	fts := feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate)
	o := &oracle{
		features: dynamicresources.AllocatorFeatures(fts),
		classes:  classLister{},
		celCache: dracel.NewCache(100, dracel.Features{
			EnableConsumableCapacity: fts.EnableDRAConsumableCapacity,
			EnableListTypeAttributes: fts.EnableDRAListTypeAttributes,
		}),
	}
	for i := range in.Classes {
		o.classes[in.Classes[i].Name] = &in.Classes[i]
	}
	for i := range in.Allocated {
		o.allocated = append(o.allocated, &in.Allocated[i])
	}
	return o
}

// state gathers the allocated state as the scheduler's allocated-devices tracker does.
func (o *oracle) state() structured.AllocatedState {
	st := structured.AllocatedState{
		AllocatedDevices:         sets.New[structured.DeviceID](),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}
	for _, claim := range o.allocated {
		if claim.Status.Allocation == nil {
			continue
		}
		for _, r := range claim.Status.Allocation.Devices.Results {
			if ptr.Deref(r.AdminAccess, false) {
				continue
			}
			id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
			if o.features.ConsumableCapacity && r.ShareID != nil {
				st.AllocatedSharedDeviceIDs.Insert(structured.MakeSharedDeviceID(id, r.ShareID))
				if r.ConsumedCapacity != nil {
					st.AggregatedCapacity.Insert(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
				}
				continue
			}
			st.AllocatedDevices.Insert(id)
		}
	}
	return st
}

func node(name string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
}

func pending(claims []resourceapi.ResourceClaim) []*resourceapi.ResourceClaim {
	out := make([]*resourceapi.ResourceClaim, len(claims))
	for i := range claims {
		c := claims[i].DeepCopy()
		c.Status = resourceapi.ResourceClaimStatus{}
		out[i] = c
	}
	return out
}

// allocate runs the allocator once, on one node, for the claims.
func (o *oracle) allocate(ctx context.Context, slices []resourceapi.ResourceSlice, nodeName string,
	claims []*resourceapi.ResourceClaim) ([]resourceapi.AllocationResult, error) {
	ptrs := make([]*resourceapi.ResourceSlice, len(slices))
	for i := range slices {
		ptrs[i] = &slices[i]
	}
	allocator, err := structured.NewAllocator(ctx, o.features, o.state(), o.classes, ptrs, o.celCache)
	if err != nil {
		return nil, fmt.Errorf("new allocator: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, allocateTimeout)
	defer cancel()
	return allocator.Allocate(ctx, node(nodeName), claims)
}

// allocateTimeout bounds one Allocate call as the scheduler's DRA filter timeout does (its default): past it the
// scheduler gives up on the node with an Error status, and so does this program ("timeout").
const allocateTimeout = 10 * time.Second

func (o *oracle) commit(claims []*resourceapi.ResourceClaim, results []resourceapi.AllocationResult) []claimOut {
	out := make([]claimOut, len(claims))
	for i, claim := range claims {
		claim.Status.Allocation = &results[i]
		o.allocated = append(o.allocated, claim)
		out[i] = claimOut{Name: claim.Name, Allocation: &results[i].Devices}
	}
	return out
}

func (o *oracle) schedule(ctx context.Context, slices []resourceapi.ResourceSlice, nodes []string, pod podIn) podOut {
	out := podOut{Name: pod.Name, Outcome: "unschedulable", Claims: []claimOut{}}
	for _, name := range nodes {
		claims := pending(pod.Claims)
		results, err := o.allocate(ctx, slices, name, claims)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			out.Attempts = append(out.Attempts, attempt{Node: name, Outcome: "timeout", Error: err.Error()})
			out.Outcome, out.Node, out.Error = "timeout", name, err.Error()
			return out
		case errors.Is(err, structured.ErrFailedAllocationOnNode):
			out.Attempts = append(out.Attempts, attempt{Node: name, Outcome: "failed-on-node", Error: err.Error()})
			continue
		case err != nil:
			out.Attempts = append(out.Attempts, attempt{Node: name, Outcome: "error", Error: err.Error()})
			out.Outcome, out.Node, out.Error = "error", name, err.Error()
			return out
		case len(results) != len(claims):
			out.Attempts = append(out.Attempts, attempt{Node: name, Outcome: "none"})
			continue
		}
		out.Attempts = append(out.Attempts, attempt{Node: name, Outcome: "allocated"})
		out.Outcome, out.Node = "allocated", name
		out.Claims = o.commit(claims, results)
		return out
	}
	return out
}

type deviceKey struct{ driver, pool, device string }

// pinnedSlices rewrites the slices for judging a proposal: in every pool, the proposed devices come first, in
// proposal order, followed by the devices that are kept for their effect on the proposal (keep), in their
// original order; every other device is left out. The pool's device slices become one slice (so that the order
// holds across slices) and the pool's slice count follows.
func pinnedSlices(slices []resourceapi.ResourceSlice, proposal []deviceKey, keep func(deviceKey, resourceapi.ResourceSlice) bool) []resourceapi.ResourceSlice {
	rank := map[deviceKey]int{}
	for i, k := range proposal {
		if _, seen := rank[k]; !seen {
			rank[k] = i
		}
	}
	type poolKey struct{ driver, pool string }
	var out []resourceapi.ResourceSlice
	merged := map[poolKey]int{} // index in out of the pool's one device slice
	for _, s := range slices {
		pk := poolKey{s.Spec.Driver, s.Spec.Pool.Name}
		if len(s.Spec.Devices) == 0 {
			out = append(out, *s.DeepCopy())
			continue
		}
		if i, ok := merged[pk]; ok {
			out[i].Spec.Devices = append(out[i].Spec.Devices, s.DeepCopy().Spec.Devices...)
			continue
		}
		merged[pk] = len(out)
		out = append(out, *s.DeepCopy())
	}
	for pk, i := range merged {
		front := make([]*resourceapi.Device, len(proposal))
		var rest []resourceapi.Device
		for d := range out[i].Spec.Devices {
			device := out[i].Spec.Devices[d]
			key := deviceKey{pk.driver, pk.pool, device.Name}
			if r, ok := rank[key]; ok {
				front[r] = &device
			} else if keep(key, out[i]) {
				rest = append(rest, device)
			}
		}
		var ordered []resourceapi.Device
		for _, d := range front {
			if d != nil {
				ordered = append(ordered, *d)
			}
		}
		out[i].Spec.Devices = append(ordered, rest...)
	}
	counts := map[poolKey]int64{}
	for _, s := range out {
		counts[poolKey{s.Spec.Driver, s.Spec.Pool.Name}]++
	}
	for i := range out {
		out[i].Spec.Pool.ResourceSliceCount = counts[poolKey{out[i].Spec.Driver, out[i].Spec.Pool.Name}]
	}
	return out
}

// wantsAll tells whether the proposal uses a request or subrequest in allocationMode All (one it does not use
// does not need the node's other devices).
func wantsAll(claims []resourceapi.ResourceClaim) bool {
	for _, c := range claims {
		used := map[string]bool{}
		for _, r := range c.Status.Allocation.Devices.Results {
			used[r.Request] = true
		}
		for _, r := range c.Spec.Devices.Requests {
			if r.Exactly != nil && r.Exactly.AllocationMode == resourceapi.DeviceAllocationModeAll && used[r.Name] {
				return true
			}
			for _, sub := range r.FirstAvailable {
				if sub.AllocationMode == resourceapi.DeviceAllocationModeAll && used[r.Name+"/"+sub.Name] {
					return true
				}
			}
		}
	}
	return false
}

// sameResults compares two allocations as multisets of results: the order of results within a claim carries no
// meaning for the allocation.
func sameResults(want, got *resourceapi.DeviceAllocationResult) bool {
	if len(want.Results) != len(got.Results) {
		return false
	}
	return slices.Equal(resultKeys(want), resultKeys(got))
}

func resultKeys(allocation *resourceapi.DeviceAllocationResult) []string {
	out := make([]string, 0, len(allocation.Results))
	for _, r := range allocation.Results {
		consumed := make([]string, 0, len(r.ConsumedCapacity))
		for name, q := range r.ConsumedCapacity {
			consumed = append(consumed, fmt.Sprintf("%s=%d", name, q.Value()))
		}
		sort.Strings(consumed)
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%v|%s", r.Request, r.Driver, r.Pool, r.Device, r.ShareID != nil, strings.Join(consumed, ",")))
	}
	sort.Strings(out)
	return out
}

const (
	errOtherDevices = "the allocator chooses other devices"
	maxOrders       = 720 // orders of the proposed devices tried before a proposal is rejected
)

// judge runs the allocator once on pinned slices and compares its choice with the proposal.
func (o *oracle) judge(ctx context.Context, slices []resourceapi.ResourceSlice, pod podIn,
	claims []*resourceapi.ResourceClaim) podOut {
	out := podOut{Name: pod.Name, Node: pod.Node, Outcome: "accepted", Claims: []claimOut{}}
	results, err := o.allocate(ctx, slices, pod.Node, pending(pod.Claims))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		out.Outcome, out.Error = "timeout", err.Error()
	case err != nil:
		out.Outcome, out.Error = "rejected", err.Error()
	case len(results) != len(claims):
		out.Outcome, out.Error = "rejected", "the allocator finds no allocation on the node"
	default:
		for i := range claims {
			out.Claims = append(out.Claims, claimOut{Name: claims[i].Name, Allocation: &results[i].Devices})
			if !sameResults(&pod.Claims[i].Status.Allocation.Devices, &results[i].Devices) {
				out.Outcome, out.Error = "rejected", fmt.Sprintf("claim %s: %s", claims[i].Name, errOtherDevices)
			}
		}
	}
	return out
}

func distinct(keys []deviceKey) []deviceKey {
	seen := map[deviceKey]bool{}
	var out []deviceKey
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// permute calls visit with the orders of keys (Heap's algorithm, the given order first) until visit returns true.
func permute(keys []deviceKey, visit func([]deviceKey) bool) {
	var generate func(k int) bool
	generate = func(k int) bool {
		if k <= 1 {
			return visit(keys)
		}
		for i := 0; i < k-1; i++ {
			if generate(k - 1) {
				return true
			}
			if k%2 == 0 {
				keys[i], keys[k-1] = keys[k-1], keys[i]
			} else {
				keys[0], keys[k-1] = keys[k-1], keys[0]
			}
		}
		return generate(k - 1)
	}
	generate(len(keys))
}

func (o *oracle) pinned(ctx context.Context, slices []resourceapi.ResourceSlice, pod podIn) podOut {
	out := podOut{Name: pod.Name, Node: pod.Node, Outcome: "accepted", Claims: []claimOut{}}
	var proposal []deviceKey
	for _, c := range pod.Claims {
		if c.Status.Allocation == nil {
			out.Outcome, out.Error = "rejected", fmt.Sprintf("claim %s: no proposed allocation", c.Name)
			return out
		}
		for _, r := range c.Status.Allocation.Devices.Results {
			proposal = append(proposal, deviceKey{r.Driver, r.Pool, r.Device})
		}
	}
	claims := pending(pod.Claims)
	// Devices already allocated stay (they hold shared counters, and the allocator skips them as in use); for
	// an allocationMode All request every device of the node stays, since "all" is judged against all of them.
	inUse := o.state().AllocatedDevices
	all := wantsAll(pod.Claims)
	keep := func(key deviceKey, slice resourceapi.ResourceSlice) bool {
		if inUse.Has(structured.MakeDeviceID(key.driver, key.pool, key.device)) {
			return true
		}
		return all && ptr.Deref(slice.Spec.NodeName, "") == pod.Node
	}
	// The first order is the proposal's; when the allocator picks other devices (a multi-allocatable device
	// that an earlier request also fits is shared there first), other orders of the proposed devices are tried.
	order := distinct(proposal)
	tries := 0
	permute(order, func(order []deviceKey) bool {
		tries++
		out = o.judge(ctx, pinnedSlices(slices, order, keep), pod, claims)
		return out.Outcome == "accepted" || !strings.HasSuffix(out.Error, errOtherDevices) || tries >= maxOrders
	})
	if out.Outcome == "rejected" && strings.HasSuffix(out.Error, errOtherDevices) {
		// Every order tried makes the allocator allocate the pod within the proposed devices (the pinned slices
		// offer no other free device), but never exactly as proposed.
		out.Outcome = "equivalent"
	}
	for i := range pod.Claims {
		o.allocated = append(o.allocated, pod.Claims[i].DeepCopy())
	}
	return out
}

// defaults applies the API server's defaults (allocationMode ExactCount, count 1, toleration operator Equal, ...),
// as the scheduler only ever sees stored, defaulted objects.
func defaults(in *input) {
	for i := range in.Slices {
		resourcev1.SetObjectDefaults_ResourceSlice(&in.Slices[i])
	}
	for i := range in.Allocated {
		resourcev1.SetObjectDefaults_ResourceClaim(&in.Allocated[i])
	}
	for p := range in.Pods {
		for i := range in.Pods[p].Claims {
			resourcev1.SetObjectDefaults_ResourceClaim(&in.Pods[p].Claims[i])
		}
	}
}

// scenario runs one input document.
func scenario(ctx context.Context, in *input) (output, error) {
	if in.Mode != "schedule" && in.Mode != "pinned" {
		return output{}, fmt.Errorf("mode must be schedule or pinned, not %q", in.Mode)
	}
	defaults(in)
	o := newOracle(in)
	out := output{Pods: make([]podOut, 0, len(in.Pods))}
	for _, pod := range in.Pods {
		if in.Mode == "schedule" {
			out.Pods = append(out.Pods, o.schedule(ctx, in.Slices, in.Nodes, pod))
		} else {
			out.Pods = append(out.Pods, o.pinned(ctx, in.Slices, pod))
		}
	}
	return out, nil
}

func run() error {
	var in struct {
		Scenarios []input `json:"scenarios"`
	}
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	ctx := context.Background()
	var out struct {
		Scenarios []output `json:"scenarios"`
	}
	out.Scenarios = make([]output, 0, len(in.Scenarios))
	for i := range in.Scenarios {
		result, err := scenario(ctx, &in.Scenarios[i])
		if err != nil {
			return fmt.Errorf("scenario #%d: %w", i, err)
		}
		out.Scenarios = append(out.Scenarios, result)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "allocoracle:", err)
		os.Exit(1)
	}
}
