// A headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools
// protocol, with Node's own WebSocket (Node 22, scripts/bootstrap's): no
// npm package, no browser download.  For the dashboard's tests.
//
//   node cdp.js OUTDIR STEP...
//
// Steps, in order:
//   goto:URL          navigate, wait for the page's load
//   dom:NAME          OUTDIR/NAME.json: what the test checks (see dom below)
//   shot:NAME         OUTDIR/NAME.png, the whole page
//   click:SELECTOR    click the element, wait for the page it leads to
//   sh:COMMAND        run COMMAND (sh -c) and wait for it
//   eval:JS           run JS in the page (e.g. to fill in a field, or drop one)
//   reload            wait for a load the page makes itself (its live reload)
//   cookies:NAME      OUTDIR/NAME.json: the browser's cookies (httpOnly, sameSite)
// A dialog (alert, confirm) is dismissed and recorded: dom's "dialogs".
// Chromium runs with a fresh profile under OUTDIR and every switch that
// keeps it off the network.  Exit 0, or 1 with the failing step on stderr.
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const STEP_MS = 60000;   // generous: two cores, five engineers' tests at once
const [outdir, ...steps] = process.argv.slice(2);
if (!outdir || steps.length === 0) {
  console.error('usage: node cdp.js OUTDIR STEP...');
  process.exit(2);
}

function launch() {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage', '--remote-debugging-port=0', '--window-size=1400,900',
    `--user-data-dir=${path.join(outdir, 'profile')}`, 'about:blank'];
  const proc = spawn(process.env.CHROMIUM || '/usr/bin/chromium', args,
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = fs.createWriteStream(path.join(outdir, 'chromium.log'));
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('chromium did not open its DevTools port')), STEP_MS);
    proc.stderr.on('data', (d) => {
      log.write(d);
      text += d;
      const m = text.match(/DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//);
      if (m && timer) {
        clearTimeout(timer);
        resolve({ proc, port: m[1] });
      }
    });
    proc.on('exit', (code) => reject(new Error(`chromium exited (${code}): ${text.slice(-400)}`)));
  });
}

// One page's session: send(method, params) -> result; on(event, fn).
async function attach(port) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = list.find((t) => t.type === 'page');
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error('no DevTools socket')); });
  let id = 0;
  const waiting = new Map(), handlers = {};
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && waiting.has(msg.id)) {
      const { res, rej } = waiting.get(msg.id);
      waiting.delete(msg.id);
      msg.error ? rej(new Error(`${msg.error.message}`)) : res(msg.result);
    } else if (msg.method) {
      (handlers[msg.method] || []).forEach((fn) => fn(msg.params));
    }
  };
  return {
    send: (method, params = {}) => new Promise((res, rej) => {
      waiting.set(++id, { res, rej });
      ws.send(JSON.stringify({ id, method, params }));
    }),
    on: (ev, fn) => { (handlers[ev] = handlers[ev] || []).push(fn); },
    close: () => ws.close(),
  };
}

function within(ms, what, p) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

// What the page shows, as the tests read it: the agents' rows, what
// elements a hostile text would have made, the page's own text.
const DOM = `(() => {
  const cell = (r, c) => { const e = r.querySelector(c); return e ? e.textContent : null; };
  return {
    url: location.href, title: document.title,
    rows: [...document.querySelectorAll('tr.agent')].map((r) => ({
      agent: r.dataset.agent, state: r.dataset.state, paused: !!r.querySelector('.paused'),
      owner: cell(r, '.owner'), error: cell(r, '.err'), stderr: cell(r, '.stderr'),
      events: cell(r, '.ev'), counters: cell(r, '.counters'),
      actions: [...r.querySelectorAll('.actions button')].map((b) => b.textContent) })),
    scripts: document.querySelectorAll('script').length,
    injected: document.querySelectorAll('img, svg, iframe, object, embed').length,
    message: cell(document, '#message'), summary: cell(document, '#summary'),
    forms: document.querySelectorAll('form').length,
    cookie_visible: document.cookie,
    body: document.body ? document.body.innerText.slice(0, 4000) : '' };
})()`;

async function main() {
  const { proc, port } = await launch();
  const page = await attach(port);
  const dialogs = [];
  let loads = 0;
  const loaded = [];
  page.on('Page.loadEventFired', () => { loads++; loaded.splice(0).forEach((f) => f()); });
  page.on('Page.javascriptDialogOpening', (p) => {
    dialogs.push(p.message);
    page.send('Page.handleJavaScriptDialog', { accept: false }).catch(() => {});
  });
  await page.send('Page.enable');
  await page.send('Runtime.enable');
  await page.send('Network.enable');
  const nextLoad = () => within(STEP_MS, 'page load', new Promise((res) => loaded.push(res)));
  const evaluate = async (expr) => {
    const r = await page.send('Runtime.evaluate', { expression: expr, returnByValue: true });
    if (r.exceptionDetails)
      throw new Error(`evaluate: ${r.exceptionDetails.text}`);
    return r.result.value;
  };
  const write = (name, v) => fs.writeFileSync(path.join(outdir, name), JSON.stringify(v, null, 1));

  try {
    for (const step of steps) {
      const i = step.indexOf(':'), verb = i < 0 ? step : step.slice(0, i), arg = i < 0 ? '' : step.slice(i + 1);
      console.log(`step ${verb}${arg ? ' ' + arg.slice(0, 80) : ''}`);
      if (verb === 'goto') {
        const l = nextLoad();
        await page.send('Page.navigate', { url: arg });
        await l;
      } else if (verb === 'dom') {
        write(`${arg}.json`, { ...(await evaluate(DOM)), dialogs, loads });
      } else if (verb === 'shot') {
        const r = await page.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true });
        fs.writeFileSync(path.join(outdir, `${arg}.png`), Buffer.from(r.data, 'base64'));
      } else if (verb === 'click') {
        const l = nextLoad();
        const found = await evaluate(`(() => { const e = document.querySelector(${JSON.stringify(arg)});
          if (!e) return false; e.click(); return true; })()`);
        if (!found)
          throw new Error(`no element ${arg}`);
        await l;
      } else if (verb === 'sh') {
        const r = spawnSync('sh', ['-c', arg], { stdio: 'inherit' });
        if (r.status !== 0)
          throw new Error(`sh: ${arg}: exit ${r.status}`);
      } else if (verb === 'eval') {
        await evaluate(arg);
      } else if (verb === 'reload') {
        await nextLoad();
      } else if (verb === 'cookies') {
        write(`${arg}.json`, (await page.send('Network.getCookies')).cookies);
      } else {
        throw new Error(`unknown step ${verb}`);
      }
    }
  } finally {
    page.close();
    proc.kill('SIGKILL');
  }
}

main().then(() => process.exit(0), (e) => { console.error(`cdp.js: ${e.message}`); process.exit(1); });
