// The Azure Monitor workbook of patchwave: rollouts by state, decisions over time, rollbacks
// with their reasons, dead letters, failing invocations and patch runs, from what reaches
// Application Insights (the handler's JSON log lines as traces, the host's requests). Its
// content is infra/workbooks/patchwave.workbook.json (Notebook/1.0, KQL items; tests/workbook.rs
// checks it); it opens under the Application Insights resource (Workbooks) and under Monitor →
// Workbooks, where fallbackResourceIds points its queries at the same resource.

param location string
param tags object
param namePrefix string

@description('Application Insights component the workbook belongs to and queries.')
param appInsightsId string

@description('Name shown in the workbook gallery.')
param displayName string = '${namePrefix}: rollouts'

var content = loadJsonContent('../workbooks/patchwave.workbook.json')

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // a workbook's name is a GUID; this one is stable per resource group and prefix, so a
  // redeployment updates it rather than adding another
  name: guid(resourceGroup().id, namePrefix, 'patchwave-rollouts-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    version: 'Notebook/1.0'
    serializedData: string(union(content, {
      fallbackResourceIds: [
        appInsightsId
      ]
    }))
  }
}

output id string = workbook.id
output name string = workbook.name
