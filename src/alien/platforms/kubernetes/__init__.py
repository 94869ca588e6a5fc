"""Kubernetes: what a pull-model debug session needs to call the cluster's API from the agent
(the agent's service account, the API server's CA, the error shape kubectl reads)."""
