/* mcp_probe: `agentd-worker --mcp-probe ...` (see mcp_probe.c). */
#ifndef AGENTD_MCP_PROBE_H
#define AGENTD_MCP_PROBE_H

int mcp_probe_main(int argc, char **argv);

#endif
