"""SSH to an instance: ``keys`` (the skill's own login keys, the ssh block), ``hostkeys`` (host-key
pins), ``run`` (one command over SSH, bounded) and ``wait`` (until an instance runs and answers SSH)."""
