import { onTestFinished } from 'vitest';
import { createRenderer, type App, type Component, type Plugin } from 'vue';

/**
 * Vue's own renderer (runtime-core: components, lifecycle, scheduler) over a tree of
 * plain objects instead of the DOM. The composables never touch the DOM, so a DOM
 * library (jsdom, happy-dom, @vue/test-utils) would add nothing but weight; what the
 * tests need is real components that mount, re-render and unmount under Node.
 */
export interface TreeNode {
  readonly tag: string;
  text: string;
  parent: TreeNode | null;
  children: TreeNode[];
  readonly props: Record<string, unknown>;
}

const node = (tag: string, text = ''): TreeNode => ({ tag, text, parent: null, children: [], props: {} });

function detach(child: TreeNode): void {
  const parent = child.parent;
  if (!parent) return;
  parent.children.splice(parent.children.indexOf(child), 1);
  child.parent = null;
}

export const { createApp } = createRenderer<TreeNode, TreeNode>({
  createElement: (tag) => node(tag),
  createText: (text) => node('#text', text),
  createComment: (text) => node('#comment', text),
  setText: (target, text) => {
    target.text = text;
  },
  setElementText: (el, text) => {
    for (const child of el.children) child.parent = null;
    el.children = [];
    if (text) {
      const child = node('#text', text);
      child.parent = el;
      el.children.push(child);
    }
  },
  insert: (child, parent, anchor) => {
    detach(child);
    const at = anchor ? parent.children.indexOf(anchor) : -1;
    if (at < 0) parent.children.push(child);
    else parent.children.splice(at, 0, child);
    child.parent = parent;
  },
  remove: detach,
  parentNode: (target) => target.parent,
  nextSibling: (target) => {
    const siblings = target.parent?.children ?? [];
    return siblings[siblings.indexOf(target) + 1] ?? null;
  },
  patchProp: (el, key, _previous, next) => {
    el.props[key] = next;
  },
});

/** A root to mount into. */
const root = (): TreeNode => node('root');

/** The text a tree shows, as a browser's textContent would. */
function textOf(tree: TreeNode): string {
  return tree.tag === '#comment' ? '' : tree.text + tree.children.map(textOf).join('');
}

/** Mounts a component with the plugins given; unmounted when the test ends (unless the test did). */
export function mount(component: Component, ...plugins: Plugin[]): { app: App<TreeNode>; text: () => string } {
  const tree = root();
  const app = createApp(component);
  for (const plugin of plugins) app.use(plugin);
  app.mount(tree);
  let mounted = true;
  app.onUnmount(() => (mounted = false));
  onTestFinished(() => {
    if (mounted) app.unmount();
  });
  return { app, text: () => textOf(tree) };
}
