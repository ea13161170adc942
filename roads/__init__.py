"""The road network the fleet drives on and the local metric projection its geometry is in (imports only core)."""
