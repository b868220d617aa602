// A socket.io-client process for the half-open test: run inside a network
// namespace (ip netns exec), it connects to the URL given, subscribes to
// the project given, prints "ready <sid>" and stays connected until
// killed. It does not reconnect.
import { io } from 'socket.io-client';

const [url, project] = process.argv.slice(2);
const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
socket.on('connect', () => socket.emit('subscribe_project', { project_id: project }));
socket.on('subscribed_project', () => console.log(`ready ${socket.id}`));
socket.on('connect_error', (err) => { console.log(`error ${err.message}`); process.exit(1); });
setTimeout(() => process.exit(0), 120000).unref?.();
setInterval(() => {}, 1000);
