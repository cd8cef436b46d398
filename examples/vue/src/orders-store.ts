import { defineStore } from 'pinia';
import { initialState, type Order } from '@tradesync/protocol';

/** The open orders of one account, mirrored from its `orders:<account>` stream by the TradeSync Pinia plugin. */
export const useOrdersStore = defineStore('orders', {
  state: () => ({
    account: new URLSearchParams(location.search).get('account') ?? 'demo',
    // The stream's empty state until its snapshot arrives.
    orders: initialState('orders'),
  }),
  getters: {
    /** Oldest first. */
    open: (state): Order[] => Object.values(state.orders.orders).sort((a, b) => a.created_at.localeCompare(b.created_at) || a.order_id.localeCompare(b.order_id)),
  },
  tradesync: {
    // A getter of the store: changing `account` moves the binding to that account's stream.
    streams: { orders: (store) => `orders:${store.account}` },
  },
});
