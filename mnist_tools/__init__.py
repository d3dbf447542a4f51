"""mnist_tools: what `make` runs beside the course (`python -m mnist_tools VERB`); the course's
package, mnist_utils, never imports it."""
