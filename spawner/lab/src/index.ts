/**
 * The GPU a JupyterHub GPU server holds, where its person works: a status bar item ("GPU: A100-SXM4-80GB · 37 % ·
 * 12.0 / 80.0 GiB", "CPU only"), a panel with the last hour and when the server will be stopped, and JupyterLab
 * notifications before a stop or as a GPU budget runs low.
 *
 * Everything shown comes from this server's own extension (`jupyterhub-gpu/view`), which asks the hub's GPU
 * service with the server's token; the browser never talks to the hub for it. The words are the service's
 * (server_view.py in gpudockerspawner): JupyterLab and the hub's pages say the same thing.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

const PLUGIN_ID = 'jupyterhub-gpu-lab:plugin';
const OPEN = 'jupyterhub-gpu:open';
// The notices already shown (by id), so that each is shown once, also across reloads of the page.
const SEEN_KEY = 'jupyterhub-gpu-lab:seen';
const SVG = 'http://www.w3.org/2000/svg';

interface IGpu {
  index: string | null;
  uuid: string | null;
  name: string | null;
  profile: string | null;
  utilization: number | null;
  memory_used: number | null;
  memory_total: number | null;
  plot: { width: number; height: number; utilization: string; memory: string };
}

interface IView {
  available: boolean;
  error?: string;
  at: number;
  interval: number;
  status: { text: string; level: 'ok' | 'warning' };
  gpus: IGpu[];
  kind: string;
  since: number | null;
  rule: string;
  budget: { sentence: string; used_words: string } | null;
  stop: { why: string; at: number; sentence: string } | null;
  idle_note: string;
  notices: { id: string; level: 'warning' | 'info'; message: string }[];
}

async function fetchView(): Promise<IView> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'jupyterhub-gpu', 'view');
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    throw new Error(`${response.status} ${response.statusText}`);
  }
  return (await response.json()) as IView;
}

function element(
  tag: string,
  attributes: Record<string, string> = {},
  text = ''
): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  node.textContent = text;
  return node;
}

function gib(bytes: number | null): string {
  return bytes === null ? '?' : (bytes / 2 ** 30).toFixed(1);
}

function clockTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false
  });
}

function minutesAndSeconds(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  const minutes = Math.floor(whole / 60);
  return minutes ? `${minutes} min ${whole % 60} s` : `${whole} s`;
}

/**
 * The last hour as the hub's GPU page draws it (gpudockerspawner/plot.py): utilisation a solid line, memory in use
 * a dashed one, in a box of the service's size.
 */
function plot(gpu: IGpu): SVGSVGElement {
  const { width, height } = gpu.plot;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('width', `${width * 2}`);
  svg.setAttribute('height', `${height * 2}`);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute(
    'aria-label',
    'utilisation (solid) and memory in use (dashed) over the last hour'
  );
  svg.classList.add('jp-gpu-plot');
  const frame = document.createElementNS(SVG, 'rect');
  for (const [name, value] of Object.entries({
    x: '0',
    y: '0',
    width: `${width}`,
    height: `${height}`,
    fill: 'none',
    stroke: 'currentColor',
    'stroke-opacity': '0.2'
  })) {
    frame.setAttribute(name, value);
  }
  svg.appendChild(frame);
  for (const [series, dashed] of [
    ['utilization', false],
    ['memory', true]
  ] as [keyof IGpu['plot'], boolean][]) {
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', 'currentColor');
    line.setAttribute('stroke-width', '1.5');
    line.setAttribute('points', String(gpu.plot[series]));
    line.classList.add(`jp-gpu-plot-${series}`);
    if (dashed) {
      line.setAttribute('stroke-dasharray', '3 2');
      line.setAttribute('stroke-opacity', '0.6');
    }
    svg.appendChild(line);
  }
  return svg;
}

/** The status bar item: what the server holds, in a few words; a warning colour as a stop nears. */
class GpuStatus extends Widget {
  constructor(open: () => void) {
    super();
    this.addClass('jp-gpu-status');
    this.node.title = 'Your GPU: click for the GPU panel';
    this.node.addEventListener('click', open);
  }

  show_(view: IView): void {
    this.node.textContent = view.status.text;
    this.toggleClass('jp-gpu-status-warning', view.status.level === 'warning');
  }
}

/** The panel: the GPUs held, since when, under which rule, the last hour, the budget and the coming stop. */
class GpuPanel extends Widget {
  private _view: IView | null = null;
  private _timer = 0;

  constructor() {
    super();
    this.id = 'jupyterhub-gpu-panel';
    this.addClass('jp-gpu-panel');
    this.title.label = 'My GPU';
    this.title.caption = 'The GPU this server holds';
    this.title.closable = true;
  }

  protected onAfterAttach(): void {
    // The countdown to the stop moves between answers.
    this._timer = window.setInterval(() => this._countdown(), 1000);
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this._timer);
  }

  show_(view: IView): void {
    this._view = view;
    const body = this.node;
    body.replaceChildren();
    body.appendChild(element('h2', {}, 'My GPU'));
    body.appendChild(
      element('p', { class: 'jp-gpu-status-line' }, view.status.text)
    );
    if (view.error) {
      body.appendChild(element('p', { class: 'jp-gpu-error' }, view.error));
    }
    if (!view.gpus.length) {
      body.appendChild(
        element(
          'p',
          { class: 'jp-gpu-none' },
          'This server holds no GPU: it runs on the CPU only.'
        )
      );
    }
    for (const gpu of view.gpus) {
      const section = element('section', {
        class: 'jp-gpu-card',
        'data-gpu': gpu.uuid ?? ''
      });
      const title = gpu.profile
        ? `MIG ${gpu.profile} slice of ${gpu.name ?? 'a GPU'}`
        : (gpu.name ?? 'GPU');
      section.appendChild(element('h3', {}, `${title} (${gpu.index ?? '?'})`));
      const figures =
        gpu.memory_total === null
          ? 'No figures from the sampler yet.'
          : `${gpu.utilization === null ? 'Utilisation not measured (MIG)' : `${gpu.utilization} % utilisation`}` +
            ` · ${gib(gpu.memory_used)} of ${gib(gpu.memory_total)} GiB in use`;
      section.appendChild(element('p', { class: 'jp-gpu-figures' }, figures));
      section.appendChild(plot(gpu));
      section.appendChild(
        element(
          'p',
          { class: 'jp-gpu-legend' },
          'Last hour: utilisation (solid), memory in use (dashed).'
        )
      );
      body.appendChild(section);
    }
    if (view.since) {
      body.appendChild(
        element(
          'p',
          { class: 'jp-gpu-since' },
          `Held since ${clockTime(view.since)}, ${view.rule}.`
        )
      );
    }
    if (view.budget) {
      body.appendChild(
        element('p', { class: 'jp-gpu-budget' }, view.budget.sentence)
      );
    }
    if (view.stop) {
      const stop = element('p', {
        class: 'jp-gpu-stop',
        'data-at': String(view.stop.at),
        'data-why': view.stop.why
      });
      stop.appendChild(element('span', {}, view.stop.sentence));
      stop.appendChild(element('span', { class: 'jp-gpu-countdown' }));
      body.appendChild(stop);
    } else if (view.gpus.length) {
      body.appendChild(
        element(
          'p',
          { class: 'jp-gpu-stop-none' },
          view.idle_note || 'No stop is coming for this server now.'
        )
      );
    }
    this._countdown();
  }

  private _countdown(): void {
    const view = this._view;
    const countdown = this.node.querySelector('.jp-gpu-countdown');
    if (!view || !view.stop || !countdown) {
      return;
    }
    // The browser's clock against the service's: the answer's own time says how far apart they are.
    const left = view.stop.at - view.at - (Date.now() / 1000 - this._receivedAt);
    countdown.textContent = ` (in ${minutesAndSeconds(left)}, at ${clockTime(view.stop.at)} your time)`;
  }

  receivedAt(at: number): void {
    this._receivedAt = at;
  }

  private _receivedAt = Date.now() / 1000;
}

function seenNotices(): Set<string> {
  try {
    return new Set(JSON.parse(window.localStorage.getItem(SEEN_KEY) ?? '[]'));
  } catch {
    return new Set();
  }
}

function notify(view: IView, open: () => void): void {
  const seen = seenNotices();
  for (const notice of view.notices) {
    if (seen.has(notice.id)) {
      continue;
    }
    seen.add(notice.id);
    Notification.emit(notice.message, notice.level, {
      autoClose: false,
      actions: [{ label: 'Show my GPU', callback: open }]
    });
  }
  // The newest hundred: enough for any day's warnings.
  window.localStorage.setItem(
    SEEN_KEY,
    JSON.stringify([...seen].slice(-100))
  );
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'The GPU this JupyterHub server holds: status bar, panel, and warnings before a stop',
  autoStart: true,
  optional: [IStatusBar, ICommandPalette, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new GpuPanel();
    const open = () => {
      if (!panel.isAttached) {
        app.shell.add(panel, 'main');
      }
      app.shell.activateById(panel.id);
    };
    app.commands.addCommand(OPEN, { label: 'Show My GPU', execute: open });
    palette?.addItem({ command: OPEN, category: 'GPU' });
    const status = new GpuStatus(open);
    let added = false;

    const poll = async () => {
      let interval = 5;
      try {
        const view = await fetchView();
        interval = Math.max(2, view.interval || 5);
        if (view.available) {
          if (!added && statusBar) {
            statusBar.registerStatusItem(PLUGIN_ID, {
              item: status,
              align: 'left',
              rank: 100
            });
            added = true;
          }
          status.show_(view);
          panel.receivedAt(Date.now() / 1000);
          panel.show_(view);
          notify(view, open);
        } else {
          return; // not on a hub that hands out GPUs: nothing to show, nothing to ask again
        }
      } catch (error) {
        console.warn('jupyterhub-gpu-lab: no GPU view', error);
        interval = 30;
      }
      window.setTimeout(poll, interval * 1000);
    };
    void poll();
  }
};

export default plugin;
