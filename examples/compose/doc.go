// Package compose holds the example docker compose files. Its test checks
// that they use only labels and variables that really work: those listed
// in docs/CONFIGURATION.md, which is generated from the agent's code.
package compose
