// llmops-device-plugin advertises simulated accelerators to a real kubelet through the kubelet
// device-plugin API (v1beta1), one plugin socket per resource, e.g.
//
//	llmops-device-plugin -plugin-dir <kubelet root>/device-plugins -resource nvidia.com/gpu=2 -resource rdma/ib=1
//
// There is no hardware behind the devices: Allocate hands the container the environment variables
// the real plugins set (NVIDIA_VISIBLE_DEVICES, ...) naming the simulated device IDs, and no device
// nodes. The plugin re-registers when the kubelet restarts (its socket is removed then).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type resources []string

func (r *resources) String() string     { return strings.Join(*r, ",") }
func (r *resources) Set(v string) error { *r = append(*r, v); return nil }

// envFor is the variable the real device plugin of each resource sets for the allocated devices.
var envFor = map[string]string{
	"nvidia.com/gpu":       "NVIDIA_VISIBLE_DEVICES",
	"huawei.com/Ascend910": "ASCEND_VISIBLE_DEVICES",
	"rdma/ib":              "LLMOPS_SIMULATED_RDMA_DEVICES",
}

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	resource string
	devices  []*pluginapi.Device
	socket   string
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done() // the simulated devices never change health
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		env := map[string]string{"LLMOPS_SIMULATED_DEVICES": "true"}
		if name, ok := envFor[p.resource]; ok {
			env[name] = strings.Join(c.DevicesIds, ",")
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{Envs: env})
	}
	return resp, nil
}

func (p *plugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// serve starts the plugin's gRPC server and registers it with the kubelet.
func (p *plugin) serve(pluginDir string) (*grpc.Server, error) {
	_ = os.Remove(p.socket)
	ln, err := net.Listen("unix", p.socket)
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	conn, err := grpc.NewClient("unix://"+filepath.Join(pluginDir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: filepath.Base(p.socket), ResourceName: p.resource,
	})
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("register %s: %w", p.resource, err)
	}
	log.Printf("registered %s (%d devices) at %s", p.resource, len(p.devices), p.socket)
	return srv, nil
}

func main() {
	var res resources
	pluginDir := flag.String("plugin-dir", pluginapi.DevicePluginPath, "the kubelet's device-plugins directory")
	node := flag.String("node", "node", "node name, part of the device IDs")
	flag.Var(&res, "resource", "resource=count to advertise (repeatable)")
	flag.Parse()
	if len(res) == 0 {
		log.Fatal("at least one -resource name=count is required")
	}
	var plugins []*plugin
	for _, r := range res {
		name, count, ok := strings.Cut(r, "=")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n < 1 || !strings.Contains(name, "/") {
			log.Fatalf("bad -resource %q: want vendor.domain/name=count", r)
		}
		p := &plugin{resource: name, socket: filepath.Join(*pluginDir, "llmops-"+strings.NewReplacer("/", "-", ".", "-").Replace(name)+".sock")}
		for i := 0; i < n; i++ {
			p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("%s-%s-%d", *node, filepath.Base(name), i), Health: pluginapi.Healthy})
		}
		plugins = append(plugins, p)
	}
	servers := make([]*grpc.Server, len(plugins))
	lastErr := make([]string, len(plugins)) // log a registration failure once, not every second
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for i, p := range plugins {
			// (re)register when not serving or when the kubelet removed our socket (it restarted)
			if _, err := os.Stat(p.socket); servers[i] != nil && err == nil {
				continue
			}
			if servers[i] != nil {
				servers[i].Stop()
				servers[i] = nil
			}
			srv, err := p.serve(*pluginDir)
			if err != nil {
				if err.Error() != lastErr[i] {
					log.Printf("%v (retrying every second)", err)
					lastErr[i] = err.Error()
				}
				continue
			}
			servers[i], lastErr[i] = srv, ""
		}
		select {
		case <-stop:
			for _, s := range servers {
				if s != nil {
					s.Stop()
				}
			}
			return
		case <-tick.C:
		}
	}
}
