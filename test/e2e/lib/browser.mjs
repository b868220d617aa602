// Headless Chromium (Debian's package) driven by playwright-core, which
// never downloads a browser of its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/**
 * False when Chromium can run here; otherwise the reason, for a suite's
 * { skip }. Under CI (CI set) a missing Chromium is an error: .ci/run
 * installs it.
 */
export function browserUnavailable() {
  if (existsSync(CHROMIUM)) return false;
  const why = `${CHROMIUM} is not installed; apt-get install -y chromium`;
  if (process.env.CI) throw new Error(why);
  return why;
}

/** browserUnavailable(), checked once per test file. */
export const browserSkip = browserUnavailable();

/**
 * Starts Chromium headless with a fresh profile; returns the browser
 * context and close(), which also removes the profile.
 */
export async function launch() {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(path.join(tmpdir(), 'gw-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000, // playwright's default is 3 minutes
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(10000); // a missing element fails in seconds, not playwright's 30
  return {
    context,
    // Opening and closing a page take no timeout in playwright: bounded
    // here, so a wedged Chromium fails the test in seconds (and close()
    // below kills it) instead of holding the file until the runner's
    // timeout.
    newPage: () => within(context.newPage(), 15000, 'opening a page'),
    closePage: (page) => within(page.close(), 15000, 'closing a page'),
    // Bounded: a wedged Chromium is killed (its command line names the
    // profile directory, unique to this launch) rather than holding the
    // suite until the runner's timeout.
    async close() {
      let timer;
      const closed = await Promise.race([
        context.close().then(() => true),
        new Promise((resolve) => { timer = setTimeout(() => resolve(false), 10000); }),
      ]);
      clearTimeout(timer);
      if (!closed) spawnSync('pkill', ['-9', '-f', profile], { timeout: 5000 });
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Resolves as promise does, or rejects after ms saying what hung. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Chromium: ${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Records the console errors and uncaught exceptions of a page. */
export function consoleErrors(page) {
  const errors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('pageerror', (err) => errors.push(String(err)));
  return errors;
}
