"""Built-in catalog fixtures (YAML). Shipped as package data so an installed catalog can seed itself."""
