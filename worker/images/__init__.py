"""Images: the sandbox images' catalogue, the offline base, and the BuildKit build tool."""
