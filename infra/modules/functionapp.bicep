// The Function App running `patchwave serve` as a custom handler on Linux, with a
// system-assigned identity and the app settings of design §8.
//
// tests/infra.rs reads the `var ...Settings = [` lists below: together they must name exactly
// the variables the binary reads (handlers/config.rs) plus the host and binding settings.

param name string
param planName string
param location string
param tags object

@description('Tags on the site only, beside tags (e.g. azd-service-name, which azd deploy looks for on exactly one resource).')
param siteTags object = {}

@description('FlexConsumption (serverless, identity-only storage) or ElasticPremium (always warm, Azure Files content share).')
@allowed(['FlexConsumption', 'ElasticPremium'])
param hostingPlan string

@description('Elastic Premium size.')
@allowed(['EP1', 'EP2', 'EP3'])
param premiumSku string = 'EP1'

@description('Flex Consumption: most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory of each instance.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Spread the plan over availability zones where the region offers them (Flex Consumption in supported regions; Elastic Premium then keeps at least 3 instances).')
param zoneRedundant bool = false

param storageAccountName string
param deploymentContainerName string
param contentShareName string
param appInsightsConnectionString string

@description('Table Storage endpoint patchwave keeps its state in (PATCHWAVE_STORE=table:ENDPOINT).')
param tableEndpoint string

@description('Device Update account host name (PATCHWAVE_ADU_ENDPOINT).')
param aduEndpoint string

@description('Device Update instance (PATCHWAVE_ADU_INSTANCE).')
param aduInstance string

@description('IoT Hub host name (PATCHWAVE_IOTHUB_HOST).')
param iotHubHostName string

@description('Fully qualified Event Hubs namespace of both hubs.')
param eventHubsNamespace string

@description('Hub of twin change notifications (PATCHWAVE_TWIN_EVENTHUB_NAME, read by the TwinChanges binding).')
param twinHubName string

@description('Hub of lifecycle events (PATCHWAVE_EVENTHUB_NAME).')
param lifecycleHubName string

@description('Roles of callers presenting a function key (PATCHWAVE_KEY_ROLES).')
param keyRoles string

@description('Log filter (RUST_LOG).')
param logFilter string

@description('Client id of an Entra app registration for App Service Authentication; empty to leave it off (operators and Logic Apps then use function keys, which cannot approve).')
param authClientId string = ''

var isFlex = hostingPlan == 'FlexConsumption'

var flexPlanSku = {
  name: 'FC1'
  tier: 'FlexConsumption'
}

var premiumPlanSku = {
  name: premiumSku
  tier: 'ElasticPremium'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is a parameter (zoneRedundant), off by default because not every region offers zones for these plans and Elastic Premium then bills 3 instances at least.
  name: planName
  location: location
  tags: tags
  kind: isFlex ? 'functionapp' : 'elastic'
  sku: isFlex ? flexPlanSku : premiumPlanSku
  properties: {
    reserved: true
    maximumElasticWorkerCount: isFlex ? null : 20
    zoneRedundant: zoneRedundant
  }
}

// What the binary reads (handlers/config.rs, and RUST_LOG through tracing's EnvFilter).
// Not set here on purpose: FUNCTIONS_CUSTOMHANDLER_PORT (the host sets it), PATCHWAVE_PORT,
// PATCHWAVE_FUNCTION_KEYS and PATCHWAVE_EVENTS_FILE (standalone or local only), and
// AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET (client-secret credential only;
// the managed identity, the Table store's included, is the system-assigned one).
var patchwaveSettings = [
  {
    name: 'PATCHWAVE_STORE'
    value: 'table:${tableEndpoint}'
  }
  {
    name: 'PATCHWAVE_CREDENTIAL'
    value: 'managed-identity'
  }
  {
    name: 'PATCHWAVE_AUTH'
    value: 'azure'
  }
  {
    name: 'PATCHWAVE_KEY_ROLES'
    value: keyRoles
  }
  {
    name: 'PATCHWAVE_ADU_ENDPOINT'
    value: aduEndpoint
  }
  {
    name: 'PATCHWAVE_ADU_INSTANCE'
    value: aduInstance
  }
  {
    name: 'PATCHWAVE_ARM_ENDPOINT'
    value: environment().resourceManager
  }
  {
    name: 'PATCHWAVE_IOTHUB_HOST'
    value: iotHubHostName
  }
  {
    name: 'PATCHWAVE_EVENTHUB_NAMESPACE'
    value: eventHubsNamespace
  }
  {
    name: 'PATCHWAVE_EVENTHUB_NAME'
    value: lifecycleHubName
  }
  {
    name: 'RUST_LOG'
    value: logFilter
  }
]

// What the Functions host and the bindings read: identity-based host storage, telemetry, and
// the TwinChanges trigger (connection "PATCHWAVE_TWIN_EVENTHUB", hub "%PATCHWAVE_TWIN_EVENTHUB_NAME%").
var bindingSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsightsConnectionString
  }
  {
    name: 'PATCHWAVE_TWIN_EVENTHUB__fullyQualifiedNamespace'
    value: eventHubsNamespace
  }
  {
    name: 'PATCHWAVE_TWIN_EVENTHUB_NAME'
    value: twinHubName
  }
]

// Elastic Premium only. Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION as app settings: there the runtime is functionAppConfig.runtime
// (custom) and the package lives in the deployment container.
var premiumSettings = [
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'custom'
  }
  {
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
  {
    name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'
    value: isFlex ? '' : 'DefaultEndpointsProtocol=https;AccountName=${storage.name};AccountKey=${storage.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'
  }
  {
    name: 'WEBSITE_CONTENTSHARE'
    value: contentShareName
  }
  {
    name: 'WEBSITE_RUN_FROM_PACKAGE'
    value: '1'
  }
]

// Flex Consumption: the package in the deployment container, read with the app's identity.
var flexConfig = {
  deployment: {
    storage: {
      type: 'blobContainer'
      value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
      authentication: {
        type: 'SystemAssignedIdentity'
      }
    }
  }
  scaleAndConcurrency: {
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
  runtime: {
    name: 'custom'
    version: '1.0'
  }
}

var appSettings = concat(patchwaveSettings, bindingSettings, isFlex ? [] : premiumSettings)

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:Event Grid deliveries, Logic Apps and operators reach the app over its public endpoint (no VNet here); every operator route needs a function key or an Entra principal (App Service Authentication), and patchwave answers 401 otherwise.
  // checkov:skip=CKV_AZURE_212:numberOfWorkers is a dedicated App Service setting; the Functions scale controller sizes these plans (Flex Consumption scales from zero, Elastic Premium keeps minimumElasticInstanceCount warm).
  // checkov:skip=CKV_AZURE_213:The only HTTP route is the Operator function (authLevel function): a platform health probe carries no key and would mark healthy instances failed. The host itself watches the handler process, and GET /api/health serves operators with a key.
  // checkov:skip=CKV_AZURE_17:Client certificates would refuse Event Grid deliveries and Logic Apps calls; callers authenticate with function keys or Entra tokens instead.
  name: name
  location: location
  tags: union(tags, siteTags)
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      minimumElasticInstanceCount: isFlex ? null : 1
      cors: {
        allowedOrigins: []
      }
      appSettings: appSettings
    }
    functionAppConfig: isFlex ? flexConfig : null
  }
}

resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

// App Service Authentication (Entra ID) when an app registration is given: modules/appauth.bicep.
module auth 'appauth.bicep' = if (!empty(authClientId)) {
  name: '${name}-auth'
  params: {
    siteName: site.name
    clientId: authClientId
  }
}

output id string = site.id
output name string = site.name
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
output url string = 'https://${site.properties.defaultHostName}'
output appSettingNames array = [for setting in appSettings: setting.name]
