import { toast } from 'sonner';
import type { ToastSpec } from '../core/notifications.js';

/** Shows a desk toast with sonner; a signal toast gets "View details". */
export function showToast(spec: ToastSpec, openSignal: (id: string) => void): void {
  const show = spec.kind === 'success' ? toast.success : spec.kind === 'warning' ? toast.warning : spec.kind === 'error' ? toast.error : toast.info;
  const signalId = spec.signalId;
  show(spec.title, {
    ...(spec.description ? { description: spec.description } : {}),
    ...(signalId ? { action: { label: 'View details', onClick: () => openSignal(signalId) } } : {}),
  });
}
