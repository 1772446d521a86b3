"""What the clouds' stacks share: the dispatcher's contract, the releases' memory, the store's ACL and
the TURN relay's server. A layer below stacks/aws, gcp, azure and k8s, above stacks/config."""
