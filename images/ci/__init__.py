"""Building and running the images for real without a container engine (buildah + unshare + chroot)."""
