// Drives the `fleet dashboard` page in headless Chromium on behalf of the
// Rust integration test, which serves the dashboard against a simulator and
// spawns this script.
//
// Environment:
//   DASHBOARD_URL          page of an operator holding every role
//   DASHBOARD_URL_NO_ROLE  page of an operator without the Deployer role
//   SCREENSHOT             PNG written while the rollout is under way; on
//                          failure `<SCREENSHOT minus .png>.fail.png` is written
//   CHROMIUM               browser binary (default /usr/bin/chromium)
//   STEP_TIMEOUT_MS        bound on every wait, stdin replies included
//                          (default 60000)
//
// Protocol: at each checkpoint the script prints `STEP <name> [detail]` and
// waits for one stdin line; `OK` continues, anything else (or EOF) aborts.
// A failed expectation prints `FAIL <reason>` and exits 1.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 60_000);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The page refreshes itself by polling the server; checking a little more
// often than that is enough to see every intermediate state.
const POLL_MS = 100;

/** An expectation about the page that did not hold. */
class Failure extends Error {}

const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function requireEnv(name) {
  const value = process.env[name];
  if (!value) throw new Failure(`environment variable ${name} is not set`);
  return value;
}

// --- stdin checkpoints -----------------------------------------------------

const pendingLines = [];
let lineWaiter = null;
let stdinClosed = false;
const stdin = readline.createInterface({ input: process.stdin });
stdin.on('line', (line) => {
  if (lineWaiter) lineWaiter(line);
  else pendingLines.push(line);
});
stdin.on('close', () => {
  stdinClosed = true;
  lineWaiter?.(null);
});

/** Next stdin line, or null on EOF. */
function nextLine(timeoutMs) {
  if (pendingLines.length > 0) return Promise.resolve(pendingLines.shift());
  if (stdinClosed) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      lineWaiter = null;
      reject(new Failure(`no reply on stdin within ${timeoutMs} ms`));
    }, timeoutMs);
    lineWaiter = (line) => {
      clearTimeout(timer);
      lineWaiter = null;
      resolve(line);
    };
  });
}

async function checkpoint(name, detail) {
  const suffix = detail === undefined ? '' : ` ${oneLine(detail)}`;
  process.stdout.write(`STEP ${name}${suffix}\n`);
  const reply = await nextLine(STEP_TIMEOUT_MS);
  if (reply === null) throw new Failure(`stdin closed after STEP ${name}`);
  if (reply.trim() !== 'OK') {
    throw new Failure(`aborted by the test after STEP ${name}: ${oneLine(reply)}`);
  }
}

// --- page helpers ------------------------------------------------------------

/** Summary of what the page currently shows, for failure messages. */
async function describe(page) {
  const summary = page.evaluate(() => {
    const text = (sel) => document.querySelector(sel)?.textContent.trim() ?? '<missing>';
    const error = document.querySelector('#error');
    const rows = (sel) => document.querySelectorAll(sel).length;
    return [
      `phase=${JSON.stringify(text('#phase'))}`,
      `halt-cause=${JSON.stringify(text('#halt-cause'))}`,
      `error=${error?.checkVisibility() ? JSON.stringify(text('#error')) : '<hidden>'}`,
      `confirm=${document.querySelector('dialog#confirm')?.open ? 'open' : 'closed'}`,
      `waves=${rows('#waves tr[data-wave]')}`,
      `failures=${rows('#failures tr[data-canister]')}`,
    ].join(' ');
  });
  // A wedged page must not turn a diagnosis into another hang.
  const timeout = sleep(5_000).then(() => '<page not responding>');
  return Promise.race([summary, timeout]).catch((e) => `<page unavailable: ${oneLine(e.message)}>`);
}

/**
 * Polls `predicate` in the page until it returns something truthy and
 * returns that value; a timeout names what was awaited and what the page
 * showed instead.
 */
async function waitFor(page, what, predicate, arg) {
  try {
    const handle = await page.waitForFunction(predicate, arg, {
      timeout: STEP_TIMEOUT_MS,
      polling: POLL_MS,
    });
    return await handle.jsonValue();
  } catch (e) {
    const reason = e.name === 'TimeoutError'
      ? `timed out after ${STEP_TIMEOUT_MS} ms`
      : oneLine(e.message.split('\n')[0]);
    throw new Failure(`waiting for ${what}: ${reason}; page shows ${await describe(page)}`, { cause: e });
  }
}

const phaseStartsWith = (page, prefix) =>
  waitFor(
    page,
    `#phase to start with "${prefix}"`,
    (p) => document.querySelector('#phase')?.textContent.trim().startsWith(p),
    prefix,
  );

async function click(page, selector) {
  try {
    await page.click(selector, { timeout: STEP_TIMEOUT_MS });
  } catch (e) {
    throw new Failure(
      `clicking ${selector}: ${oneLine(e.message.split('\n')[0])}; page shows ${await describe(page)}`,
      { cause: e },
    );
  }
}

/** Every control asks for confirmation; `answer` is the dialog button pressed. */
async function confirmedClick(page, button, word, answer) {
  await click(page, button);
  await waitFor(page, `dialog#confirm to open after clicking ${button}`, () => {
    const dialog = document.querySelector('dialog#confirm');
    return dialog?.open && dialog.checkVisibility();
  });
  await waitFor(
    page,
    `#confirm-text to mention "${word}"`,
    (w) => document.querySelector('#confirm-text')?.textContent.includes(w),
    word,
  );
  await click(page, answer);
  await waitFor(
    page,
    `dialog#confirm to close after clicking ${answer}`,
    () => !document.querySelector('dialog#confirm')?.open,
  );
}

/** Fails fast with a precise message when the page misses part of its contract. */
async function checkContract(page) {
  const required = [
    '#phase', '#halt-cause', '#waves', '#in-flight', '#pause', '#resume', '#abort',
    '#rollback', 'dialog#confirm', '#confirm-text', '#confirm-yes', '#confirm-no',
    '#error', '#failures', '#events', '#search', '#search-go', '#search-results',
    '#cycles', '#chart',
  ];
  const missing = await page.evaluate(
    (sels) => sels.filter((sel) => !document.querySelector(sel)),
    required,
  );
  if (missing.length > 0) throw new Failure(`page lacks ${missing.join(', ')}`);
}

/**
 * Waits for the canary wave to complete and for the total of `td.done` to
 * grow at least twice, proving the page updates itself without a reload.
 */
async function waitForAdvancing(page) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let best = null;
  let increases = 0;
  for (;;) {
    const seen = await page.evaluate(() => ({
      done: [...document.querySelectorAll('#waves tr[data-wave]')].map(
        (row) => row.querySelector('td.done')?.textContent.trim() ?? '',
      ),
      canary: document.querySelector('#waves tr[data-wave="0"] td.state')?.textContent.trim() ?? null,
    }));
    const sum = seen.done.reduce((acc, t) => acc + (Number.parseInt(t, 10) || 0), 0);
    if (best === null) best = sum;
    else if (sum > best) {
      increases += 1;
      best = sum;
    }
    if (seen.canary?.toLowerCase() === 'complete' && increases >= 2) return sum;
    if (Date.now() > deadline) {
      throw new Failure(
        `waves not advancing within ${STEP_TIMEOUT_MS} ms: canary state=${JSON.stringify(seen.canary)}, ` +
          `done total grew ${increases} time(s), td.done=${JSON.stringify(seen.done)}`,
      );
    }
    await sleep(POLL_MS);
  }
}

async function open(context, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  // Page-side errors do not fail the run by themselves but explain most failures.
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.error(`[console] ${msg.text()} (${msg.location().url})`);
  });
  let response;
  try {
    response = await page.goto(url, { timeout: STEP_TIMEOUT_MS });
  } catch (e) {
    throw new Failure(`opening ${url}: ${oneLine(e.message.split('\n')[0])}`, { cause: e });
  }
  if (!response?.ok()) throw new Failure(`opening ${url}: HTTP ${response?.status()}`);
  return page;
}

// --- scenario ------------------------------------------------------------------

let browser;
let current; // page the scenario is acting on, screenshotted on failure

async function run() {
  const url = requireEnv('DASHBOARD_URL');
  const noRoleUrl = requireEnv('DASHBOARD_URL_NO_ROLE');
  const screenshot = requireEnv('SCREENSHOT');
  await mkdir(path.dirname(path.resolve(screenshot)), { recursive: true });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: STEP_TIMEOUT_MS,
    // CI runs as root, where Chromium refuses to start sandboxed. Playwright
    // adds this (and --disable-dev-shm-usage) by default; kept explicit so a
    // change of defaults cannot break root runs.
    args: ['--no-sandbox'],
  });

  const operator = await open(await browser.newContext({ viewport: { width: 1280, height: 900 } }), url);
  current = operator;
  await checkContract(operator);

  // a. waves advancing
  await phaseStartsWith(operator, 'Running');
  const done = await waitForAdvancing(operator);
  await checkpoint('advancing', done);

  // b. screenshot mid-rollout
  await operator.screenshot({ path: screenshot, fullPage: true });

  // c. pause
  await confirmedClick(operator, '#pause', 'Pause', '#confirm-yes');
  await phaseStartsWith(operator, 'Paused');
  await checkpoint('paused');

  // d. resume; the test injects failures once it sees this step
  await confirmedClick(operator, '#resume', 'Resume', '#confirm-yes');
  await phaseStartsWith(operator, 'Running');
  await checkpoint('resumed');

  // e. halted by the injected failures
  const haltCause = await waitFor(
    operator,
    'a halt with a cause, a failed canister with an error and a wave with failure causes',
    () => {
      const text = (el) => el?.textContent.trim() ?? '';
      if (!text(document.querySelector('#phase')).startsWith('Halted')) return false;
      const cause = text(document.querySelector('#halt-cause'));
      const failed = [...document.querySelectorAll('#failures tr[data-canister]')]
        .some((row) => text(row.querySelector('td.error')));
      const byCause = [...document.querySelectorAll('#waves tr[data-wave]')]
        .some((row) => text(row.querySelector('td.causes')));
      return cause && failed && byCause && cause;
    },
  );
  await checkpoint('halted', haltCause);

  // f. an operator without the Deployer role is refused
  const bystander = await open(await browser.newContext(), noRoleUrl);
  current = bystander;
  await phaseStartsWith(bystander, 'Halted');
  await confirmedClick(bystander, '#resume', 'Resume', '#confirm-yes');
  const refusal = await waitFor(bystander, '#error to show NotAuthorized', () => {
    const error = document.querySelector('#error');
    const text = error?.textContent.trim() ?? '';
    return error?.checkVisibility() && text.includes('NotAuthorized') && text;
  });
  const afterRefusal = await bystander.textContent('#phase');
  if (!afterRefusal?.trim().startsWith('Halted')) {
    throw new Failure(`refused resume still changed #phase to ${JSON.stringify(afterRefusal)}`);
  }
  await checkpoint('refused', refusal);
  await bystander.context().close();
  current = operator;

  // g. search a failed canister, then back out of an abort
  const canister = await operator.locator('#failures tr[data-canister]').first().getAttribute('data-canister');
  if (!canister) throw new Failure('first #failures row has an empty data-canister');
  await operator.fill('#search', canister);
  await click(operator, '#search-go');
  await waitFor(
    operator,
    `#search-results to list ${canister}`,
    (id) => [...document.querySelectorAll('#search-results tr[data-canister]')]
      .some((row) => row.dataset.canister === id),
    canister,
  );

  await confirmedClick(operator, '#abort', 'Abort', '#confirm-no');
  const afterCancel = await operator.textContent('#phase');
  if (!afterCancel?.trim().startsWith('Halted')) {
    throw new Failure(`cancelled abort still changed #phase to ${JSON.stringify(afterCancel)}`);
  }
  process.stdout.write('STEP done\n');
}

function failureScreenshotPath() {
  const shot = process.env.SCREENSHOT;
  return shot ? `${shot.replace(/\.png$/i, '')}.fail.png` : null;
}

async function closeBrowser() {
  if (!browser) return;
  // Never let a stuck browser keep the test waiting.
  await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
}

let exitCode = 0;
try {
  await run();
} catch (e) {
  exitCode = 1;
  // Playwright errors carry a multi-line call log; stdout gets the headline.
  const reason = e instanceof Failure ? e.message : e.message.split('\n')[0];
  process.stdout.write(`FAIL ${oneLine(reason)}\n`);
  console.error(e.cause ?? e);
  const shot = failureScreenshotPath();
  if (current && shot) {
    await current
      .screenshot({ path: shot, fullPage: true, timeout: 10_000 })
      .then(() => console.error(`failure screenshot: ${shot}`))
      .catch((err) => console.error(`could not write ${shot}: ${oneLine(err.message)}`));
  }
} finally {
  await closeBrowser();
  stdin.close();
}
process.exit(exitCode);
