"""`MACHINES=gce`: a Compute Engine VM per session from a Pulumi-managed instance template.
"""
