import urql from '@urql/vue'
import { createApp } from 'vue'
import App from './App.vue'
import { createApiClient } from './api/client'
import './style.css'

createApp(App).use(urql, createApiClient()).mount('#app')
