.PHONY: test quickstart install binaries bench lint image rbac-charts

install:        ## create .venv and install kubejit with its test tools
	scripts/install

binaries:       ## build (once) and cache kube-apiserver, etcd and Dex
	scripts/k8s-binaries

test:           ## the whole suite: lint, types, layers, unit, integration, e2e
	scripts/test

quickstart:     ## install, start a local control plane and the broker with the example config
	scripts/quickstart

bench:          ## benchmarks (figures, not pass/fail)
	scripts/bench

image:          ## build the broker image here with buildah (base from Debian packages; cached in ~/.cache/kubejit/image)
	scripts/image

rbac-charts:    ## regenerate the charts' broker-rbac.yaml from deploy/rbac.yaml
	scripts/rbac-charts
