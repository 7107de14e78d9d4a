// Command cri-standin is the test bed's container runtime: it serves the CRI RuntimeService and ImageService on
// a unix socket for a real kubelet, and runs nothing. Sandboxes and containers are records in memory (the fake of
// k8s.io/cri-client/pkg/fake, the one kubemark's hollow nodes use), so pods go Running at once and stay so until
// the kubelet stops them.
//
// It fixes the three gaps of the stock fake that matter to a real kubelet:
//   - ImageStatus reports a non-zero size (the kubelet fails a container whose image has size 0);
//   - RuntimeConfig answers cgroupfs as the cgroup driver;
//   - ContainerStatus carries a real, existing log path. With an empty one the kubelet's log manager removes every
//     match of LogPath+"*" when it removes a container, that is, files in its working directory.
//
// Every CRI call is appended as one JSON line to --calls: the method, the error if any, and for the calls that
// name a pod or a container, which one. CreateContainer lines also carry the CDI device names the kubelet passed
// (ContainerConfig.CDI_devices), which is what the e2e tests compare with the claims' allocations.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/fake"
)

// record is one line of the call log.
type record struct {
	Time        string   `json:"time"`
	Method      string   `json:"method"`
	Error       string   `json:"error,omitempty"`
	Namespace   string   `json:"namespace,omitempty"`
	Pod         string   `json:"pod,omitempty"`
	PodUID      string   `json:"podUID,omitempty"`
	Sandbox     string   `json:"sandbox,omitempty"`
	Container   string   `json:"container,omitempty"`
	ContainerID string   `json:"containerID,omitempty"`
	CDIDevices  []string `json:"cdiDevices,omitempty"`
	LogPath     string   `json:"logPath,omitempty"`
}

type callLog struct {
	mu  sync.Mutex
	out *os.File
	enc *json.Encoder
}

func openCallLog(path string) (*callLog, error) {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &callLog{out: out, enc: json.NewEncoder(out)}, nil
}

func (l *callLog) write(r record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(r)
}

// standin is the fake runtime with the gaps fixed; every method it does not override is the fake's.
type standin struct {
	*fake.RemoteRuntime
	logRoot string // where a container's log goes when the sandbox names no log directory
}

func newStandin(logRoot string) *standin {
	f := fake.NewFakeRemoteRuntime()
	f.ImageService.SetFakeImageSize(1 << 20)
	f.RuntimeService.FakeLinuxConfiguration = &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
	}
	f.RuntimeService.FakeStatus = &runtimeapi.RuntimeStatus{
		Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: true},
		},
	}
	return &standin{RemoteRuntime: f, logRoot: logRoot}
}

// logPathFor is where the container's log lives: the kubelet's own layout (sandbox log directory + the
// container's relative log path) when it gives one, else a file of our own. Never empty.
func (s *standin) logPathFor(req *runtimeapi.CreateContainerRequest, id string) string {
	dir := req.GetSandboxConfig().GetLogDirectory()
	rel := req.GetConfig().GetLogPath()
	if dir != "" && rel != "" && !strings.Contains(rel, "..") {
		return filepath.Join(dir, rel)
	}
	return filepath.Join(s.logRoot, strings.ReplaceAll(id, "/", "_")+".log")
}

func (s *standin) CreateContainer(
	ctx context.Context, req *runtimeapi.CreateContainerRequest,
) (*runtimeapi.CreateContainerResponse, error) {
	resp, err := s.RemoteRuntime.CreateContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	path := s.logPathFor(req, resp.ContainerId)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("container log folder: %w", err)
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("container log file: %w", err)
	}
	_ = file.Close()
	rs := s.RuntimeService
	rs.Lock()
	if c, ok := rs.Containers[resp.ContainerId]; ok {
		c.LogPath = path
	}
	rs.Unlock()
	return resp, nil
}

// describe adds what a request says about its pod or container to the record.
func describe(r *record, req any, resp any) {
	switch q := req.(type) {
	case *runtimeapi.RunPodSandboxRequest:
		meta := q.GetConfig().GetMetadata()
		r.Namespace, r.Pod, r.PodUID = meta.GetNamespace(), meta.GetName(), meta.GetUid()
		if out, ok := resp.(*runtimeapi.RunPodSandboxResponse); ok {
			r.Sandbox = out.GetPodSandboxId()
		}
	case *runtimeapi.StopPodSandboxRequest:
		r.Sandbox = q.GetPodSandboxId()
	case *runtimeapi.RemovePodSandboxRequest:
		r.Sandbox = q.GetPodSandboxId()
	case *runtimeapi.CreateContainerRequest:
		meta := q.GetSandboxConfig().GetMetadata()
		r.Namespace, r.Pod, r.PodUID = meta.GetNamespace(), meta.GetName(), meta.GetUid()
		r.Sandbox = q.GetPodSandboxId()
		r.Container = q.GetConfig().GetMetadata().GetName()
		r.CDIDevices = []string{}
		for _, dev := range q.GetConfig().GetCDIDevices() {
			r.CDIDevices = append(r.CDIDevices, dev.GetName())
		}
		if out, ok := resp.(*runtimeapi.CreateContainerResponse); ok {
			r.ContainerID = out.GetContainerId()
		}
	case *runtimeapi.StartContainerRequest:
		r.ContainerID = q.GetContainerId()
	case *runtimeapi.StopContainerRequest:
		r.ContainerID = q.GetContainerId()
	case *runtimeapi.RemoveContainerRequest:
		r.ContainerID = q.GetContainerId()
	}
}

func (l *callLog) unary(
	ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler,
) (any, error) {
	resp, err := handler(ctx, req)
	r := record{Time: time.Now().UTC().Format(time.RFC3339Nano), Method: info.FullMethod}
	if err != nil {
		r.Error = err.Error()
	}
	describe(&r, req, resp)
	l.write(r)
	return resp, err
}

func (l *callLog) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	r := record{Time: time.Now().UTC().Format(time.RFC3339Nano), Method: info.FullMethod}
	if err != nil {
		r.Error = err.Error()
	}
	l.write(r)
	return err
}

func run() error {
	socket := flag.String("socket", "", "unix socket to serve the CRI on (required)")
	calls := flag.String("calls", "", "file to append one JSON line per CRI call to (required)")
	logRoot := flag.String("log-root", "", "folder for container logs the kubelet gives no place for (required)")
	flag.Parse()
	if *socket == "" || *calls == "" || *logRoot == "" {
		return fmt.Errorf("--socket, --calls and --log-root are required")
	}
	if err := os.MkdirAll(*logRoot, 0o755); err != nil {
		return err
	}
	calllog, err := openCallLog(*calls)
	if err != nil {
		return err
	}
	defer calllog.out.Close()
	if err := os.Remove(*socket); err != nil && !os.IsNotExist(err) {
		return err
	}
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		return err
	}
	server := grpc.NewServer(grpc.UnaryInterceptor(calllog.unary), grpc.StreamInterceptor(calllog.stream))
	rt := newStandin(*logRoot)
	runtimeapi.RegisterRuntimeServiceServer(server, rt)
	runtimeapi.RegisterImageServiceServer(server, rt)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.Stop()
	}()
	fmt.Fprintf(os.Stderr, "cri-standin: serving on %s\n", *socket)
	err = server.Serve(listener)
	_ = os.Remove(*socket)
	return err
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cri-standin: %v\n", err)
		os.Exit(1)
	}
}
