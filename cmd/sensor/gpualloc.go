package main

import (
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/gpu"
)

// gpuAlloc tells the enricher which GPUs a container was given: the static
// allocation by cgroup path when one matches (hosts without a kubelet, the
// scenario harness), else the kubelet's PodResources answer for the pod.
type gpuAlloc struct {
	assigner *gpu.Assigner
	sampler  *gpu.Sampler
}

func (g gpuAlloc) GPUsFor(c *event.Container) []string {
	if idx, ok := g.assigner.StaticAlloc(c.CgroupPath); ok {
		uuids := make([]string, 0, len(idx))
		for _, i := range idx {
			// The sampler may not have seen the device yet (a replay file
			// lists GPUs only once they have owners): fall back to the
			// stable synthetic UUID it will use.
			u, known := g.sampler.UUIDByIndex(i)
			if !known {
				u = gpu.SyntheticUUID(i)
			}
			uuids = append(uuids, u)
		}
		return uuids
	}
	if c.Pod != "" && c.Pod != event.Unknown {
		return g.assigner.GPUsForPod(c.Namespace, c.Pod, c.Name)
	}
	return nil
}
