import { createApp } from 'vue';
import { createPinia } from 'pinia';
import { createTradeSync } from '@tradesync/vue';
import { tradeSyncPinia } from '@tradesync/vue/pinia';
import App from './App.vue';

// The gateway that served this page: one client (one socket) for the whole app.
const tradeSync = createTradeSync({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws` });
const pinia = createPinia().use(tradeSyncPinia(tradeSync.client));

createApp(App).use(tradeSync).use(pinia).mount('#app');
