"""Google Cloud: what a pull-model debug session needs to call Google APIs from inside the
environment (the agent's own token, the error shape gcloud reads)."""
