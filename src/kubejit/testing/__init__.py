"""The real control-plane harness (etcd + kube-apiserver) used by tests and `kubejit dev-cluster`."""
