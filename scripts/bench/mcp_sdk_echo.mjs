// The peer for the MCP round-trip benchmark: the official TypeScript SDK's
// client over stdio, N calls of server-everything's echo, one at a time.
//   node mcp_sdk_echo.mjs NPM_DIR N
// Prints {"calls", "p50_us", "p99_us", "mean_us"} as agentd-worker --mcp-probe -n does.
const [npm, n] = [process.argv[2], Number(process.argv[3] || 10000)];
const sdk = `${npm}/node_modules/@modelcontextprotocol/sdk/dist/esm/client`;
const { Client } = await import(`${sdk}/index.js`);
const { StdioClientTransport } = await import(`${sdk}/stdio.js`);
const client = new Client({ name: "bench", version: "1.0.0" });
await client.connect(new StdioClientTransport({
  command: "node",
  args: [`${npm}/node_modules/@modelcontextprotocol/server-everything/dist/index.js`, "stdio"],
  stderr: "ignore",
}));
const lat = [];
for (let i = 0; i < n; i++) {
  const t0 = process.hrtime.bigint();
  await client.callTool({ name: "echo", arguments: { message: "hi" } });
  lat.push(Number(process.hrtime.bigint() - t0) / 1000);
}
lat.sort((a, b) => a - b);
const mean = lat.reduce((a, b) => a + b, 0) / n;
console.log(JSON.stringify({ calls: n, p50_us: Math.round(lat[Math.floor(n / 2)]),
  p99_us: Math.round(lat[Math.floor(n * 99 / 100)]), mean_us: mean }));
await client.close();
